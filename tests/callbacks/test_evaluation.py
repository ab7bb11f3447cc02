"""The probes' evaluation: an eval-mode pass read in large batches gives what small ones give."""

import torch

from normlab.callbacks.evaluation import evaluate, rebatched
from normlab.models import build_model
from normlab.norms import norm_factory


def test_rebatched_keeps_every_image_in_order():
    batches = [(torch.full((2, 1), float(i)), torch.tensor([i, i])) for i in range(7)]
    joined = list(rebatched(batches, 6))
    assert [len(y) for _, y in joined] == [6, 6, 2]
    assert torch.equal(torch.cat([y for _, y in joined]), torch.cat([y for _, y in batches]))
    assert list(rebatched(batches, 2)) == batches


def test_an_eval_mode_bn_model_scores_the_same_in_batches_of_2_and_of_512():
    torch.manual_seed(0)
    model = build_model("cnn", norm_factory("batch"))
    with torch.no_grad():  # running statistics away from 0/1, so eval mode is not the identity
        model.train()(torch.randn(64, 3, 32, 32) * 3 + 1)
    model.eval()
    batches = [(torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))) for _ in range(300)]
    small = evaluate(model, batches, "cpu")
    large = evaluate(model, batches, "cpu", batch_size=512)
    assert large[0] == small[0] and abs(large[1] - small[1]) < 1e-6
    eval_mode = evaluate(model, batches[:20], "cpu")
    assert evaluate(model.train(), batches[:20], "cpu") != eval_mode  # batch statistics differ
