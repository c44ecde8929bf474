"""Policy: what torch's weights_only unpickler accepts, what is dangerous, how to convert."""

from ckptaudit.policy.torch_policy import Policy, available_torch_versions, load_policy

__all__ = ["Policy", "available_torch_versions", "load_policy"]
