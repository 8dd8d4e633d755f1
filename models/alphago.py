"""AlphaGo's policy network (Silver et al. 2016): a ConvNet over a 19×19 board, not an image."""

from __future__ import annotations

from models.layers import Conv, PositionBias
from models.registry import register

BOARD_POINTS = 19 * 19


@register("alphago_policy", input_size=19, channels=48, num_classes=BOARD_POINTS)
def alphago_policy(num_classes: int = BOARD_POINTS, filters: int = 192) -> tuple:
  """19×19×48 → conv 5×5 → 11 × conv 3×3 → 1×1 conv with a bias per point → 361 scores."""
  if num_classes != BOARD_POINTS:
    raise ValueError(
      f"alphago_policy scores the {BOARD_POINTS} board points; got num_classes {num_classes}"
    )
  return (
    Conv("conv1", filters, 5, 1, 2),
    *(Conv(f"conv{i}", filters, 3, 1, 1) for i in range(2, 13)),
    Conv("conv13", 1, 1, activation=False, use_bias=False),
    PositionBias("position_bias"),
  )
