"""rnnkit: recurrent neural networks from the equations to trained, useful models."""

__version__ = "0.1.0"


def load(path):
    """A trained model from a model file or a run directory, as its task's object; see rnnkit.tasks.load.

        >>> lm = rnnkit.load("runs/demo-20261202-120000")        # doctest: +SKIP
        >>> lm.generate("def ", max_new_tokens=40, seed=0)        # doctest: +SKIP
    """
    from rnnkit.tasks import load as load_task_model

    return load_task_model(path)
