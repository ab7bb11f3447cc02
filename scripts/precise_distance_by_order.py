"""How far an EMA of BatchNorm statistics ends from the population, for each seed's data order.

The committed BN packs' last member (seed 4) has a PreciseBN distance 3-4x its pack-mates'.
This script holds everything but the order fixed: one model with fixed (random-init) weights,
no training, no pack. For each seed it runs the last `--steps` batches of epoch `--epoch`'s
order (EpochSeededSampler: the order and augmentation a run with that seed trains on), in train
mode, so the running statistics are the EMA of those batches (momentum 0.1), then prints

- `input`: the RMS over pixels of (EMA of the batch mean image - the training set's mean image),
  in units of the pixel std: the order alone, before any layer;
- `model`: PreciseBN's distance (precise/distance_mean: the EMA running mean to the population
  mean estimated on 4,096 training images, RMS over channels in population-std units, averaged
  over the layers), as the callback computes it.

    python scripts/precise_distance_by_order.py --data fashion_mnist --batch-sizes 8 32
"""

import argparse

import torch

from normlab.callbacks.norm_layers import running_stat_layers, std_units
from normlab.callbacks.population import population_statistics
from normlab.callbacks.probe import fixed_batches
from normlab.data.datamodule import ImageClassificationData
from normlab.data.epoch_sampler import EpochSeededSampler
from normlab.models.resnet import resnet20


def order_batches(train_set, seed: int, epoch: int, batch_size: int, steps: int):
    """The last `steps` (index, seed) batches of epoch `epoch` of a run with `seed`."""
    sampler = EpochSeededSampler(train_set, seed)
    sampler.set_epoch(epoch)
    index, seeds = (torch.from_numpy(a) for a in sampler.draws())
    full = len(index) // batch_size  # drop_last, as training
    for t in range(max(0, full - steps), full):
        part = slice(t * batch_size, (t + 1) * batch_size)
        yield index[part], seeds[part]


def input_distance(train_set, batches) -> float:
    images = train_set.images.float().div(255)
    mean, std = images.mean(0), images.std(0).clamp_min(1e-3)
    ema = mean.clone()
    for index, _ in batches:
        ema.mul_(0.9).add_(0.1 * images[index].mean(0))
    return ((ema - mean) / std).square().mean().sqrt().item()


@torch.no_grad()
def model_distance(model, initial, train_set, batches, population) -> float:
    model.load_state_dict(initial)
    model.train()
    for index, seeds in batches:
        model(train_set.batch(index, seeds)[0])
    layers = running_stat_layers(model)
    distances = [
        std_units(layer.running_mean, layer.running_var, *population[name], layer.eps)[0]
        for name, layer in layers.items()
    ]
    return sum(distances) / len(distances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--root", default="data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--epoch", type=int, default=4, help="the last of max_epochs=5")
    parser.add_argument("--steps", type=int, default=300, help="EMA window: 0.9^300 ~ 2e-14")
    parser.add_argument("--no-model", action="store_true", help="the input distance only")
    args = parser.parse_args()

    data = ImageClassificationData(args.data, root=args.root, batch_size=args.batch_sizes[0])
    data.setup()
    train_set = data.train_set
    channels = train_set.images.shape[1]
    torch.manual_seed(0)
    model = resnet20(torch.nn.BatchNorm2d, in_channels=channels, num_classes=10)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    print(f"{args.data}, epoch {args.epoch}'s last {args.steps} batches; resnet20, fixed weights")
    print("batch  seed  input  model")
    for b in args.batch_sizes:
        sample = fixed_batches(train_set, b, 4096, shuffle=True, seed=0)  # PreciseBN's sample
        population = None if args.no_model else population_statistics(model, sample, "cpu")
        for seed in args.seeds:
            batches = list(order_batches(train_set, seed, args.epoch, b, args.steps))
            model_d = (
                float("nan")
                if population is None
                else model_distance(model, initial, train_set, batches, population)
            )
            print(f"{b:5d}  {seed:4d}  {input_distance(train_set, batches):.3f}  {model_d:.4f}")


if __name__ == "__main__":
    main()
