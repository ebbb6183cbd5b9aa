"""The paper's published numbers (shared/paper-notes.md section 5), for comparison only: never a result."""

from __future__ import annotations

PAPER_TEMPERATURES = (1, 2, 5, 10, 20, 30, 40, 50, 100)

# JSMA success rate vs distillation temperature, read off the paper's figure (+-1 point).
SUCCESS_VS_T = {
    "mnist": {1: 91.4, 2: 82.7, 5: 25.0, 10: 7.0, 20: 1.5, 30: 1.5, 40: 0.6, 50: 1.5, 100: 0.8},
    "cifar10": {1: 93.1, 2: 88.4, 5: 67.4, 10: 47.8, 20: 18.3, 30: 13.5, 40: 9.6, 50: 6.5, 100: 5.3},
}

HEADLINE = {
    "mnist": {"success_baseline": 95.89, "success_distilled_T100": 0.45, "accuracy_baseline": 99.5,
              "accuracy_distilled": 99.0, "rho_adv_increase_pct": 790},
    "cifar10": {"success_baseline": 87.89, "success_distilled_T100": 5.11, "accuracy_baseline": 80.0,
                "accuracy_distilled": 81.0, "rho_adv_increase_pct": 556},
}

GRADIENT_REDUCTION = "10^30 (the paper: amplitude of the deployed softmax's Jacobian, T = 100 vs no distillation)"
CW = ("Carlini & Wagner: attacking softmax(z/T) restores ~95% JSMA success (about 35 pixels) on the T = 100 "
      "MNIST model; their own L0/L2/Linf attacks succeed 100% on distilled networks")


def paper_key(dataset: str) -> str | None:
    """Which of the paper's datasets ours stands for (MNIST-t10k is MNIST with another split)."""
    return {"mnist": "mnist", "mnist-t10k": "mnist", "cifar10": "cifar10"}.get(dataset)


# Carlini & Wagner (S&P 2017) Tables IV (undistilled) and VI (distilled, T = 100): mean distance of
# their attacks, all at 100% success. (undistilled, distilled); CIFAR10 only distilled is quoted.
CW_TABLES = {
    "mnist": {
        "cw_l0": {"best": (8.5, 10), "average": (16, 19), "worst": (33, 36)},
        "cw_l2": {"best": (1.36, 1.7), "average": (1.76, 2.2), "worst": (2.60, 2.9)},
        "cw_linf": {"best": (0.13, 0.14), "average": (0.16, 0.18), "worst": (0.23, 0.25)},
    },
    "cifar10": {
        "cw_l0": {"best": (None, 7.4), "average": (None, 15), "worst": (None, 29)},
        "cw_l2": {"best": (None, 0.36), "average": (None, 0.60), "worst": (None, 0.92)},
        "cw_linf": {"best": (None, 0.002), "average": (None, 0.023), "worst": (None, 0.038)},
    },
}
CW_L2_VS_T_RHO = -0.05  # C&W: the L2 distance found is uncorrelated with the distillation temperature
CW_TOLERANCE = 0.35  # our mean distances are marked against C&W's within +-35%
