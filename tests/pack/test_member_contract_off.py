"""The contract of a pack (test_member_contract.py) for the other half of the norms, with the
statistics callbacks off."""

import pytest

from tests.pack.test_member_contract import EVERY_NORM, killed_packs_equal_solo_runs


@pytest.mark.slow
def test_every_member_of_a_killed_and_resumed_pack_equals_its_solo_run_callbacks_off(tmp_path):
    killed_packs_equal_solo_runs(EVERY_NORM[1::2], ["callbacks=none"], tmp_path)
