"""Import of the seed's Lightning checkpoint and pickled StandardScaler."""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from app.commands.models import register
from models.checkpoint import load_bundle
from models.errors import SeedImportError, UntrustedPickleError
from models.inference import Predictor
from models.seed_import import import_seed, import_seed_to_file, read_lightning_ckpt

sklearn_pre = pytest.importorskip("sklearn.preprocessing")

F, T, UNITS = 12, 10, 8
SPEC = "seed-spec-hash"


class SeedNet(nn.Module):
    """The seed's classifier as its own code would name it (attn, layer_norm, fc with ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(F, UNITS, 2, batch_first=True, bidirectional=True)
        self.attn = nn.MultiheadAttention(2 * UNITS, 2, batch_first=True)
        self.layer_norm = nn.LayerNorm(2 * UNITS)
        self.fc = nn.Sequential(nn.Linear(6 * UNITS, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(x)
        last = seq[:, -1:]
        att, _ = self.attn(last, seq, seq, need_weights=False)
        z = self.layer_norm(last + att).squeeze(1)
        return self.fc(torch.cat([z, seq.mean(1), seq.amax(1)], dim=1))


class SeedLightningModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = SeedNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


HPARAMS = {
    "input_size": F,
    "hidden_size": 2 * UNITS,
    "num_heads": 2,
    "dropout": 0.1,
    "sequence_length": T,
    "activation": "relu",
    "learning_rate": 1e-4,
}


def lightning_dict(module: SeedLightningModule, hparams: object) -> dict:
    return {
        "epoch": 3,
        "global_step": 1234,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": module.state_dict(),
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}],
        "lr_schedulers": [{"T_max": 100, "last_epoch": 3}],
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(1.0177)}
        },
        "loops": {"fit_loop": {"epoch_progress": {"total": {"completed": 3}}}},
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A Lightning-style .ckpt whose hyper_parameters is a class of a module that is gone."""
    tmp = tmp_path_factory.mktemp("seed")
    torch.manual_seed(0)
    module = SeedLightningModule().eval()
    modfile = tmp / "fake_lightning_attr.py"
    modfile.write_text("class AttributeDict(dict):\n    pass\n")
    sys.path.insert(0, str(tmp))
    try:
        import fake_lightning_attr  # type: ignore[import-not-found]

        ckpt = tmp / "intraday-epoch=03-val_loss=1.0177-val_accuracy=0.5612.ckpt"
        torch.save(lightning_dict(module, fake_lightning_attr.AttributeDict(HPARAMS)), ckpt)
    finally:
        sys.path.remove(str(tmp))
        sys.modules.pop("fake_lightning_attr", None)
        modfile.unlink()  # like loading without Lightning installed
    rng = np.random.default_rng(0)
    scaler = sklearn_pre.StandardScaler().fit(rng.normal(5, 3, size=(400, F)))
    pkl = tmp / "scaler.pkl"
    pkl.write_bytes(pickle.dumps(scaler))
    return {"module": module, "ckpt": ckpt, "scaler": scaler, "pkl": pkl, "tmp": tmp}


def test_import_predicts_like_the_original(seed: dict, tmp_path: Path) -> None:
    out = tmp_path / "model.ckpt"
    model_hash, report = import_seed_to_file(
        seed["ckpt"], seed["pkl"], out, trust_pickle=True, spec_hash=SPEC
    )
    assert report.ok and not report.unmapped_source and len(report.mapped) == 26
    assert "optimizer_states" in report.ignored_entries
    bundle = load_bundle(out, expected_spec_hash=SPEC)  # weights-only from here on
    assert bundle.model_hash == model_hash
    cfg = bundle.config
    assert (cfg.n_features, cfg.window, cfg.hidden_size, cfg.num_heads) == (F, T, 16, 2)
    assert cfg.head_hidden == (32,) and cfg.activation == "relu"
    assert bundle.source["kind"] == "seed-import" and bundle.metrics["seed_epoch"] == 3

    x = np.random.default_rng(1).normal(5, 3, size=(7, T, F)).astype(np.float32)
    scaled = seed["scaler"].transform(x.reshape(-1, F)).reshape(x.shape).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(seed["module"](torch.from_numpy(scaled)), dim=1).numpy()
    got = Predictor([bundle]).predict(x)
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_pickles_are_refused_without_trust(seed: dict) -> None:
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        import_seed(seed["ckpt"], seed["pkl"], trust_pickle=False, spec_hash=SPEC)
    with pytest.raises(UntrustedPickleError, match=r"fake_lightning_attr|--trust-pickle"):
        read_lightning_ckpt(seed["ckpt"], trust_pickle=False)


def test_a_plain_tensor_checkpoint_needs_no_trust(seed: dict, tmp_path: Path) -> None:
    plain = tmp_path / "plain.ckpt"
    torch.save(lightning_dict(seed["module"], dict(HPARAMS)), plain)
    raw = read_lightning_ckpt(plain, trust_pickle=False)
    assert raw["hyper_parameters"]["num_heads"] == 2


def test_joblib_dumped_scaler_imports(seed: dict, tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "scaler.pkl"
    joblib.dump(seed["scaler"], path)
    bundle, _ = import_seed(seed["ckpt"], path, trust_pickle=True, spec_hash=SPEC)
    np.testing.assert_allclose(bundle.scaler.scale, seed["scaler"].scale_)


def test_unmapped_and_missing_parameters_are_reported(seed: dict, tmp_path: Path) -> None:
    state = dict(seed["module"].state_dict())
    state["model.extra_gate.weight"] = torch.zeros(4, 5)
    del state["model.layer_norm.bias"]
    ckpt = tmp_path / "odd.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(HPARAMS)}, ckpt)
    with pytest.raises(SeedImportError) as err:
        import_seed(ckpt, seed["pkl"], trust_pickle=True, spec_hash=SPEC)
    text = str(err.value)
    assert "not supplied (network):  norm.bias [16]" in text
    assert "model.extra_gate.weight [4, 5]" in text

    state["model.layer_norm.bias"] = seed["module"].state_dict()["model.layer_norm.bias"]
    torch.save({"state_dict": state, "hyper_parameters": dict(HPARAMS)}, ckpt)
    with pytest.raises(SeedImportError, match="left over"):
        import_seed(ckpt, seed["pkl"], trust_pickle=True, spec_hash=SPEC)
    bundle, report = import_seed(
        ckpt, seed["pkl"], trust_pickle=True, spec_hash=SPEC, allow_unmapped=True
    )
    assert report.unmapped_source == [("model.extra_gate.weight", (4, 5))]
    assert bundle.source["unmapped"] == ["model.extra_gate.weight"]


def test_shape_mismatch_and_wrong_scaler_width(seed: dict, tmp_path: Path) -> None:
    state = dict(seed["module"].state_dict())
    state["model.layer_norm.weight"] = torch.ones(15)
    ckpt = tmp_path / "shape.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(HPARAMS)}, ckpt)
    with pytest.raises(SeedImportError, match=r"shape differs: model.layer_norm.weight \[15\]"):
        import_seed(ckpt, seed["pkl"], trust_pickle=True, spec_hash=SPEC)
    narrow = tmp_path / "narrow.pkl"
    narrow.write_bytes(pickle.dumps(sklearn_pre.StandardScaler().fit(np.ones((3, F - 1)))))
    with pytest.raises(SeedImportError, match="11 features"):
        import_seed(seed["ckpt"], narrow, trust_pickle=True, spec_hash=SPEC)


def test_not_an_lstm_checkpoint(tmp_path: Path, seed: dict) -> None:
    ckpt = tmp_path / "cnn.ckpt"
    torch.save({"state_dict": {"model.conv.weight": torch.zeros(3, 3)}}, ckpt)
    with pytest.raises(SeedImportError, match="no LSTM weights"):
        import_seed(ckpt, seed["pkl"], trust_pickle=True, spec_hash=SPEC)


def test_cli_model_import(seed: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="trader")
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "m.ckpt"
    base = [
        "model",
        "import",
        "--ckpt",
        str(seed["ckpt"]),
        "--scaler",
        str(seed["pkl"]),
        "--out",
        str(out),
        "--spec-hash",
        SPEC,
    ]
    args = parser.parse_args(base)
    with pytest.raises(UntrustedPickleError):
        args.func(args)
    args = parser.parse_args([*base, "--trust-pickle"])
    assert args.func(args) == 0
    assert "mapped 26 tensors" in capsys.readouterr().out
    info = parser.parse_args(["model", "info", str(out)])
    assert info.func(info) == 0
    shown = capsys.readouterr().out
    assert '"spec_hash": "seed-spec-hash"' in shown
    # no training period stated: the provenance is unknown, and says so
    assert json.loads(shown)["data_seen"].startswith("provenance unknown")
    stated = tmp_path / "stated.ckpt"
    period = ["--trained-from", "2021-01-01", "--trained-to", "2024-12-31"]
    args = parser.parse_args([*base[:-3], str(stated), *base[-2:], "--trust-pickle", *period])
    assert args.func(args) == 0
    assert "data seen: stated: all symbols (not stated)" in capsys.readouterr().out
    info = parser.parse_args(["model", "info", str(stated)])
    assert info.func(info) == 0
    prov = json.loads(capsys.readouterr().out)["provenance"]
    assert prov["basis"] == "stated" and prov["symbols"] is None
    assert prov["train"]["first"] == "2021-01-01T00:00:00+05:30"
    assert prov["train"]["last"].startswith("2024-12-31T23:59:59.999")
    assert prov["spec_hash"] == SPEC
    assert load_bundle(stated, expected_spec_hash=SPEC).provenance.train is not None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trained-from", "2024-12-31", "--trained-to", "2021-01-01"],
         "--trained-to 2021-01-01 is before --trained-from 2024-12-31"),
        (["--trained-from", "2021-01-01"], "--trained-to is needed too"),
        (["--trained-to", "2021-01-01"], "--trained-from is needed too"),
        (["--symbols", "INFY"], "--symbols .* needs --trained-from and --trained-to"),
    ],
)  # fmt: skip
def test_model_import_refuses_a_bad_training_period(
    seed: dict, tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str
) -> None:
    """Refused before any file is read, with exit status 2 and the flag named."""
    from app.cli import main

    out = tmp_path / "m.ckpt"
    code = main(
        ["model", "import", "--ckpt", str(seed["ckpt"]), "--scaler", str(seed["pkl"]),
         "--out", str(out), "--trust-pickle", *flags]
    )  # fmt: skip
    assert code == 2 and not out.exists()
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("flag", ["--trained-from", "--trained-to"])
def test_model_import_dates_that_do_not_parse_name_the_flag(
    seed: dict, tmp_path: Path, capsys: pytest.CaptureFixture, flag: str
) -> None:
    from app.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            ["model", "import", "--ckpt", str(seed["ckpt"]), "--scaler", str(seed["pkl"]),
             "--out", str(tmp_path / "m.ckpt"), flag, "2021-13-01"]
        )  # fmt: skip
    assert exc.value.code == 2
    assert f"argument {flag}: '2021-13-01' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


def test_seed_class_order_is_mapped_to_sell_hold_buy(seed: dict) -> None:
    plain, _ = import_seed(seed["ckpt"], seed["pkl"], trust_pickle=True, spec_hash=SPEC)
    flipped, report = import_seed(
        seed["ckpt"],
        seed["pkl"],
        trust_pickle=True,
        spec_hash=SPEC,
        class_order=("BUY", "HOLD", "SELL"),
    )
    x = np.random.default_rng(2).normal(5, 3, size=(5, T, F)).astype(np.float32)
    p_plain = Predictor([plain]).predict(x)
    np.testing.assert_allclose(Predictor([flipped]).predict(x), p_plain[:, ::-1], atol=1e-7)
    assert any("forward pass is this package's" in note for note in report.notes)
    with pytest.raises(SeedImportError, match="class order"):
        import_seed(
            seed["ckpt"],
            seed["pkl"],
            trust_pickle=True,
            spec_hash=SPEC,
            class_order=("BUY", "SELL"),
        )


def test_a_pickled_checkpoint_is_refused_in_our_words(
    seed: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Torch's refusal advises ``weights_only=False`` (running the file's code) in bold ANSI;
    ours names the file and what is pickled in it, and points at the import for the seed."""
    from app.cli import main

    ckpt = seed["ckpt"]
    assert main(["model", "info", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {ckpt}: contains pickled Python objects (fake_lightning_attr.AttributeDict)"
    )
    assert f"trader model import --ckpt {ckpt} --scaler SCALER.pkl --trust-pickle" in err
    with pytest.raises(UntrustedPickleError) as refused:
        read_lightning_ckpt(ckpt, trust_pickle=False)
    untrusted = str(refused.value)
    assert "contains pickled Python objects (fake_lightning_attr.AttributeDict)" in untrusted
    assert "--trust-pickle" in untrusted
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a torch file at all")
    assert main(["model", "info", str(garbage)]) == 2
    unreadable = capsys.readouterr().err
    assert f"{garbage}: cannot be read as a model file" in unreadable
    for text in (err, untrusted, unreadable):
        assert "weights_only" not in text and "\x1b" not in text
        assert "trust the source" not in text  # torch's advice, in torch's words
