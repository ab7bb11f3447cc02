"""Each member's TensorBoard run: the pack's logged values for that member, under solo tags."""

import re

from normlab.callbacks.board import BoardLogger

MEMBER_KEY = re.compile(r"member(\d+)/(.+)")
PARAM_GROUP_KEY = re.compile(r"(lr-[^/]+)/pg(\d+)")  # LearningRateMonitor's, one group each


class MemberLogger(BoardLogger):
    """A TensorBoardLogger in member `index`'s run folder that writes only that member's
    values: ``member<index>/<tag>`` as <tag>, its param group's lr as a solo run names it
    (``lr-SGD``, written train/lr), and values of the whole pack (``epoch``) as they are."""

    def __init__(self, index: int, save_dir: str, **options):
        super().__init__(save_dir=save_dir, name="", version="", **options)
        self.index = index

    def own(self, metrics: dict) -> dict:
        mine = {}
        for key, value in metrics.items():
            member, group = MEMBER_KEY.fullmatch(key), PARAM_GROUP_KEY.fullmatch(key)
            if member:
                if int(member[1]) == self.index:
                    mine[member[2]] = value
            elif group:
                if int(group[2]) == self.index + 1:
                    mine[group[1]] = value
            else:
                mine[key] = value
        return mine

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        mine = self.own(metrics)
        if mine:
            super().log_metrics(mine, step)
