"""Hand-built ShapesWorld prompts and scenes shared by the reflection tests."""

from irg_rl.tasks.shapes import ShapesWorldConfig
from irg_rl.tasks.shapes.world import SceneObject

# a two-object colour prompt: a red circle and a blue square
RED_CIRCLE_BLUE_SQUARE = {
    "tag": "color_attr",
    "include": [
        {"class": "circle", "count": 1, "color": "red"},
        {"class": "square", "count": 1, "color": "blue"},
    ],
    "prompt": "a photo of a red circle and a blue square",
}


def circle_and_square(square_color: str, cfg: ShapesWorldConfig | None = None) -> list[SceneObject]:
    """A red circle in the top-left cell and a `square_color` square in the centre cell of the default grid."""
    size = (cfg or ShapesWorldConfig()).object_px
    return [SceneObject("circle", "red", 4, 4, size), SceneObject("square", square_color, 20, 20, size)]
