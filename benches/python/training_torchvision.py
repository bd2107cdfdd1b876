"""The PyTorch peer of benches/training.rs: one epoch of fine-tuning ResNet-18
(all layers, a new head) on an ImageFolder of JPEGs, a plain torchvision loop:
DataLoader (Pillow) with Resize((S, S)) + ToTensor + Normalize, shuffled,
SGD with momentum 0.9, cross-entropy. Loading is included in the time.

Usage: training_torchvision.py ROOT WEIGHTS WORKERS THREADS BATCH SIZE LR
Prints one JSON line: {"images": N, "seconds": S, "loss": L}.
"""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402


def main():
    root, weights = sys.argv[1], sys.argv[2]
    workers, threads, batch, size, lr = (int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
                                         float(sys.argv[7]))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tf = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    ds = datasets.ImageFolder(root, transform=tf)
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.fc = torch.nn.Linear(model.fc.in_features, len(ds.classes))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    model.train()
    n, total = 0, 0.0
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        n += x.shape[0]
        total += float(loss) * x.shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"images": n, "seconds": seconds, "loss": total / n}))


if __name__ == "__main__":
    main()
