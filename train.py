"""Train a CNN with a normlab norm: python train.py norm=group data.batch_size=8 (see README).
The one entry point, as the normlab-train command is: normlab.cli.train."""

from normlab.cli import train

if __name__ == "__main__":
    train()
