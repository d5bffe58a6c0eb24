"""Known, harmless messages from the libraries underneath, silenced one by one.

Each filter names one message exactly, so that every other warning still shows.
"""

from __future__ import annotations

import logging
import warnings

from pytorch_lightning.utilities.warnings import PossibleUserWarning

_INFO = (
    "💡 Tip: For seamless cloud logging",  # Lightning's advert for its hosted logger, in every run
    "Loading `train_dataloader` to estimate",  # a per-step schedule asks for the run's length early
)
# rank_zero_info goes through whichever of these Lightning's imports set last
_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_INFO)


def silence_known_noise(evaluating: bool = False) -> None:
    """Silence, in this process, the messages every mmfuse run would otherwise print:

    - Lightning's tip to install ``litlogger``, and its note that it loads the train data early to
      count the run's steps (which :class:`~mmfuse.lit.schedules.WarmupCosine` asks for);
    - ``It is recommended to use self.log('val/acc', ..., sync_dist=True)`` under DDP, for the epoch
      metrics of :class:`~mmfuse.lit.module.MultimodalModule`: each is a torchmetrics object's
      ``compute()``, which has already combined every process's state;
    - the ``FutureWarning`` that ``isinstance(treespec, LeafSpec)`` is deprecated: Lightning's
      ``_pytree`` helper under torch >= 2.9, nothing a user can change;
    - with ``evaluating``: ModelCheckpoint's warning that "the dirpath has changed" and its best
      scores won't be reloaded, which only matters to a training run that continues.

    Calling it again adds nothing.
    """
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropInfo) for f in logger.filters):
            logger.addFilter(_DropInfo())
    warnings.filterwarnings(
        "ignore",
        message=r"It is recommended to use `self\.log\('(train|val|test)/",
        category=PossibleUserWarning,
    )
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    if evaluating:
        warnings.filterwarnings("ignore", message="The dirpath has changed from", category=UserWarning)
