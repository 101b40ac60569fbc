"""Evaluation: benchmark prompt loaders, per-turn scoring with the matching reward, results and HTML reports.

    load_prompt_set(name, path, limit, **options) -> list[EvalPrompt]       (irg_rl.eval.prompt_sets)
    build_eval_reward(prompt_set, spec) / score_images(...)                (irg_rl.eval.scoring)
    evaluate(components, sampling, prompts, reward, ...) / run_eval(recipe) (irg_rl.eval.runner)
    write_html_report(out_dir, tables, curves, samples) -> path            (irg_rl.eval.report)
    EvalRecipe                                                              (irg_rl.eval.eval_config)
Submodules are imported lazily so that importing one loader does not pull in the engine.
"""

from irg_rl.eval.prompt_sets import EvalPrompt, PromptSetError, load_prompt_set, prompt_set_names

__all__ = ["EvalPrompt", "PromptSetError", "load_prompt_set", "prompt_set_names"]
