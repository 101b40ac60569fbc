"""ShapesWorld, the embedded default task: GenEval-style prompts, renderer, exact scorer, corruptions, texts.

Public API (see each module for details):
    ShapesWorldConfig, SceneObject, Scene                       world config and scene objects
    generate_prompts, enumerate_prompts, split_of, validate_meta GenEval-schema prompts, disjoint splits
    layout_scene, render, render_scene, relations_between        correct scenes and rasterisation
    detect_objects, Detection, score_image, ShapesScore          exact GenEval-rule scorer
    cell_classes, scene_from_cell_classes, image_to_cell_classes grid cell codes (0 empty, 1 + s * C + c)
    corrupt, CORRUPTION_KINDS, DEFAULT_CORRUPTION_KINDS, ...      controlled wrong scenes (applicable_corruptions)
    write_think1, write_reflection, reflection_has_structure     thinking texts
    reflection_description, described_objects                   what a reflection says it sees in image_1
"""

from irg_rl.tasks.shapes.corrupt import (
    CORRUPTION_KINDS,
    DEFAULT_CORRUPTION_KINDS,
    applicable_corruptions,
    corrupt,
)
from irg_rl.tasks.shapes.detect import Detection, detect_objects
from irg_rl.tasks.shapes.grid import (
    cell_class,
    cell_classes,
    class_to_object,
    image_to_cell_classes,
    scene_from_cell_classes,
)
from irg_rl.tasks.shapes.layout import as_rng, layout_scene, relations_between
from irg_rl.tasks.shapes.prompts import enumerate_prompts, generate_prompts, split_of, validate_meta
from irg_rl.tasks.shapes.render import render, render_scene
from irg_rl.tasks.shapes.scorer import ShapesScore, score_detections, score_image
from irg_rl.tasks.shapes.text import (
    HEADINGS,
    described_objects,
    reflection_description,
    reflection_has_structure,
    write_reflection,
    write_think1,
)
from irg_rl.tasks.shapes.world import PALETTE, TAGS, Scene, SceneObject, ShapesWorldConfig

__all__ = [
    "CORRUPTION_KINDS",
    "DEFAULT_CORRUPTION_KINDS",
    "HEADINGS",
    "PALETTE",
    "TAGS",
    "Detection",
    "Scene",
    "SceneObject",
    "ShapesScore",
    "ShapesWorldConfig",
    "applicable_corruptions",
    "as_rng",
    "cell_class",
    "cell_classes",
    "class_to_object",
    "corrupt",
    "detect_objects",
    "enumerate_prompts",
    "generate_prompts",
    "image_to_cell_classes",
    "layout_scene",
    "reflection_has_structure",
    "relations_between",
    "render",
    "render_scene",
    "scene_from_cell_classes",
    "score_detections",
    "score_image",
    "split_of",
    "validate_meta",
    "write_reflection",
    "reflection_description",
    "described_objects",
    "write_think1",
]
