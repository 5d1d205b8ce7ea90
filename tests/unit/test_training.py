from dataclasses import replace

import numpy as np
import pytest
import torch

from derelay.trainer.data import load_dataset, split_holdout
from derelay.trainer.errors import ConfigError, DataError
from derelay.trainer.models import init_weights, save_weights
from derelay.trainer.spec import CnnArgs, TaskSpec, TrainConfig, digits_mlp_spec
from derelay.trainer.training import evaluate, resolve_device, train

SPEC = digits_mlp_spec()


def _plain(**change: object) -> TrainConfig:
    """Plain cross-entropy (no proximal term, no logit adjustment) unless `change` says so."""
    return replace(TrainConfig().without_safeguards(), **change)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: a second thread only adds contention on a busy 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset(SPEC)
    train_idx, hold_idx = split_holdout(len(data), 0.2, seed=0)
    return data.subset(train_idx), data.subset(hold_idx)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_gives_identical_weight_bytes(digits):
    local, _ = digits
    X, y = local.X[:400], local.y[:400]
    runs = []
    for seed in (3, 3, 4):
        model = init_weights(SPEC, 0)
        train(model, X, y, _plain(seed=seed))
        runs.append(save_weights(model))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_mlp_learns_digits_in_two_epochs(digits):
    local, hold = digits
    model = init_weights(SPEC, 0)
    assert evaluate(model, hold.X, hold.y) < 2000
    report = train(model, local.X, local.y, _plain(epochs=2))
    assert evaluate(model, hold.X, hold.y) > 8000
    assert report.samples == 2 * len(local)
    assert report.seconds > 0 and 0 < report.final_loss < 1.0
    assert report.device == "cpu"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cnn_and_both_optimizers_reduce_the_loss(digits, optimizer):
    local, _ = digits
    spec = TaskSpec(
        arch="cnn",
        arch_args=CnnArgs(channels=(4,), hidden=0),
        input_shape=(1, 8, 8),
        num_classes=10,
        dataset="digits",
    )
    cfg = _plain(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.05)
    model = init_weights(spec, 0)
    first = train(model, local.X, local.y, cfg).final_loss
    assert train(model, local.X, local.y, cfg).final_loss < first


def test_proximal_term_keeps_the_child_near_its_parent(digits):
    local, _ = digits
    parent = _flat(init_weights(SPEC, 0))
    drift = {}
    for mu in (0.0, 1.0):
        model = init_weights(SPEC, 0)
        train(model, local.X[:500], local.y[:500], _plain(prox_mu=mu))
        drift[mu] = float((_flat(model) - parent).norm())
    assert drift[1.0] < 0.8 * drift[0.0]


def test_logit_adjustment_keeps_the_classes_a_skewed_shard_lacks(digits):
    local, holdout = digits
    parent = init_weights(SPEC, 0)
    train(parent, local.X, local.y, _plain(epochs=3))
    one_class = local.subset(np.flatnonzero(local.y == 3))
    others = holdout.subset(np.flatnonzero(holdout.y != 3))
    accuracy = {}
    for tau in (0.0, 1.0):
        child = init_weights(SPEC, 0)
        child.load_state_dict(parent.state_dict())
        train(child, one_class.X, one_class.y, _plain(epochs=3, logit_adjust=tau))
        accuracy[tau] = evaluate(child, others.X, others.y)
    before = evaluate(parent, others.X, others.y)
    assert accuracy[0.0] < before - 5000  # plain cross-entropy on one class: most digits become 3s
    assert accuracy[1.0] >= before - 200
    assert not torch.equal(_flat(child), _flat(parent))  # one class still has a loss to learn from


def test_distillation_keeps_what_the_parent_predicted_for_the_classes_a_shard_lacks(digits):
    local, holdout = digits
    parent = init_weights(SPEC, 0)
    train(parent, local.X, local.y, _plain())
    two_classes = local.subset(np.flatnonzero(np.isin(local.y, [3, 5])))
    others = torch.as_tensor(holdout.X[~np.isin(holdout.y, [3, 5])])
    with torch.no_grad():
        before = parent(others).argmax(dim=1)
    agreement = {}
    for beta in (0.0, 3.0):
        child = init_weights(SPEC, 0)
        child.load_state_dict(parent.state_dict())
        train(child, two_classes.X, two_classes.y, TrainConfig(epochs=2, distill=beta))
        with torch.no_grad():
            agreement[beta] = float((child(others).argmax(dim=1) == before).double().mean())
    assert agreement[0.0] < 0.93  # the spec's other safeguards alone let the shard move them
    assert agreement[3.0] > agreement[0.0] + 0.04


def test_evaluate_is_floored_basis_points():
    spec = TaskSpec(arch="logreg", input_shape=(2,), num_classes=3, dataset="npz")
    model = init_weights(spec, 0)
    with torch.no_grad():  # predicts the class of the larger feature: 0 or 1
        model.out.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-9.0, -9.0]]))
        model.out.bias.zero_()
    X = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    assert evaluate(model, X, np.array([0, 1, 0])) == 10000
    assert evaluate(model, X, np.array([0, 1, 2])) == 6666  # 2/3, floored
    assert evaluate(model, X, np.array([2, 2, 2])) == 0
    assert evaluate(model, X, np.array([0, 0, 0]), batch_size=2) == 6666
    assert isinstance(evaluate(model, X, np.array([0, 1, 0])), int)


def test_training_leaves_global_settings_as_it_found_them(digits):
    local, _ = digits
    before = torch.are_deterministic_algorithms_enabled()
    train(init_weights(SPEC, 0), local.X[:64], local.y[:64], _plain())
    assert torch.are_deterministic_algorithms_enabled() == before


def test_divergence_is_a_config_error():
    spec = TaskSpec(arch="logreg", input_shape=(2,), num_classes=2, dataset="npz")
    X = np.full((8, 2), 3e38, dtype=np.float32)
    with pytest.raises(ConfigError, match="diverged"):
        train(init_weights(spec, 0), X, np.arange(8) % 2, _plain(lr=10.0))


def test_empty_or_mismatched_data_is_refused():
    model = init_weights(SPEC, 0)
    with pytest.raises(DataError):
        train(model, np.zeros((0, 64), np.float32), np.zeros(0, np.int64), _plain())
    with pytest.raises(DataError):
        evaluate(model, np.zeros((3, 64), np.float32), np.zeros(2, np.int64))


def test_progress_bar(digits, capsys):
    local, _ = digits
    train(init_weights(SPEC, 0), local.X[:64], local.y[:64], _plain(), progress=True)
    assert "training" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"optimizer": "lbfgs"},
        {"momentum": 1.0},
        {"weight_decay": -1.0},
        {"prox_mu": float("inf")},
        {"logit_adjust": -1.0},
        {"distill": -1.0},
        {"distill_temperature": 0.0},
        {"seed": -1},
        {"device": "tpu"},
    ],
)
def test_config_validation(change):
    with pytest.raises(ConfigError, match="training config"):
        TrainConfig(**change)


def test_config_from_spec():
    cfg = TrainConfig.from_spec(SPEC, seed=9, device="auto")
    assert cfg.recommended() == SPEC.train.recommended()
    assert (cfg.seed, cfg.device) == (9, "auto")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line():
    with pytest.raises(ConfigError, match="no CUDA GPU") as info:
        train(
            init_weights(SPEC, 0),
            np.zeros((2, 64), np.float32),
            np.zeros(2),
            _plain(device="cuda"),
        )
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_saves_cpu_weights(digits):
    local, hold = digits
    model = init_weights(SPEC, 0)
    report = train(model, local.X, local.y, _plain(epochs=2, device="cuda"))
    assert report.device.startswith("cuda")
    assert next(model.parameters()).device.type == "cpu"
    assert evaluate(model, hold.X, hold.y) > 8000
    again = init_weights(SPEC, 0)
    train(again, local.X, local.y, _plain(epochs=2, device="cuda"))
    assert save_weights(again) == save_weights(model)
    on_gpu = init_weights(SPEC, 0).cuda()
    train(on_gpu, local.X[:64], local.y[:64], _plain(device="cpu"))
    assert next(on_gpu.parameters()).device.type == "cuda"
    assert evaluate(on_gpu, hold.X, hold.y) >= 0
    assert len(save_weights(on_gpu)) > 0
