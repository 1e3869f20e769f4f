"""Published architectures of the built-in spaces, by name (``SpaceSpec.decode("fbnet-c")``)."""

from __future__ import annotations

__all__ = ["NAMED_ARCHITECTURES"]


#: Published architectures of a space, by name (``SpaceSpec.decode("fbnet-c")``). FBNet-A/B/C: the
#: searched networks of Wu et al. (CVPR 2019), Figure 4, as in FBNet's model definitions
#: (``ir_k5_s2`` there is ``k5_e1_g2`` here). They keep the space's head (FBNet-A used 1504 channels).
NAMED_ARCHITECTURES: dict[str, dict[str, str]] = {
    "fbnet": {
        "fbnet-a": "skip,k3_e3,k3_e1,skip,skip,k5_e6,k3_e3,k5_e1,k3_e3,k5_e6,k5_e3,k5_e1_g2,k5_e6,"
        "k3_e6,k5_e1_g2,k5_e1,k3_e1_g2,k5_e6,k5_e6,k5_e3,k5_e6,k5_e6",
        "fbnet-b": "k3_e1,k3_e6,k5_e1,k3_e1,k3_e1,k5_e6,k5_e3,k3_e6,k5_e6,k5_e6,k5_e1,skip,k5_e3,"
        "k5_e6,k3_e1,k5_e1,k5_e3,k5_e6,k5_e1,k5_e6,k5_e6,k3_e6",
        "fbnet-c": "k3_e1,k3_e6,skip,k3_e1,k3_e1,k5_e6,k5_e3,k5_e6,k3_e6,k5_e6,k5_e3,k5_e6,k5_e6,"
        "k5_e6,k5_e6,k5_e6,k5_e3,k5_e6,k5_e6,k5_e6,k5_e6,k3_e6",
    },
}
