"""LoRA fine-tuning of the packaged encoder: merge, save, load, train."""

from __future__ import annotations

import json

import pytest
import torch

from models.finetune import (
    ADAPTER_FILE,
    META_FILE,
    AdapterMeta,
    FinetuneError,
    add_lora,
    base_model,
    load_model,
    merge_lora,
    save_adapter,
)
from models.intent_classifier import IntentClassifier
from models.intent_training import TrainSettings, stratified_split, train_intent_classifier

META = AdapterMeta("all-MiniLM-L6-v2", "sequence", ("a", "b", "c"), 4, 8.0, 32, {})


def _perturb(model: torch.nn.Module) -> None:
    """Give every trainable tensor a random value, as training would."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def test_merging_lora_keeps_the_outputs_and_restores_plain_linears():
    model, tokenizer = base_model(META)
    trainable = add_lora(model, META.rank, META.alpha, dropout=0.0)
    assert 0 < trainable < sum(p.numel() for p in model.parameters()) / 10
    _perturb(model)
    model.eval()
    batch = tokenizer(["my card has not arrived", "hello"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits
        merged = merge_lora(model)
        after = merged(**batch).logits
    assert torch.allclose(before, after, atol=1e-4)
    names = [type(m).__name__ for m in merged.modules()]
    assert "LoraLinear" not in names


def test_a_saved_adapter_loads_back_to_the_same_model(tmp_path):
    model, tokenizer = base_model(META)
    add_lora(model, META.rank, META.alpha, dropout=0.0)
    _perturb(model)
    save_adapter(model, tmp_path, META)
    assert (tmp_path / ADAPTER_FILE).stat().st_size < 2_000_000  # small: float16, LoRA only
    loaded, _, meta = load_model(tmp_path, "sequence")
    assert meta.labels == META.labels
    batch = tokenizer(["freeze my card"], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = merge_lora(model)(**batch).logits
        got = loaded(**batch).logits
    assert torch.allclose(expected, got, atol=2e-2)  # float16 storage


def test_bad_model_directories_are_clear_errors(tmp_path):
    with pytest.raises(FinetuneError, match="does not exist"):
        load_model(tmp_path / "missing", "sequence")
    with pytest.raises(FinetuneError, match="neither"):
        load_model(tmp_path, "sequence")
    (tmp_path / META_FILE).write_text(json.dumps({"base": "x"}))
    with pytest.raises(FinetuneError, match="incomplete"):
        load_model(tmp_path, "sequence")
    (tmp_path / META_FILE).write_text(json.dumps(META.to_json()))
    with pytest.raises(FinetuneError, match="not a token model"):
        load_model(tmp_path, "token")


def test_the_validation_split_holds_out_every_label_and_is_seeded():
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 2 + ["d"]
    train, valid = stratified_split(labels, 0.1, seed=1)
    assert sorted(train + valid) == list(range(len(labels)))
    assert {labels[i] for i in valid} == {"a", "b", "c"}  # "d" has one example: kept to train
    assert stratified_split(labels, 0.1, seed=1) == (train, valid)
    assert stratified_split(labels, 0.1, seed=2) != (train, valid)


def test_a_tiny_training_run_learns_and_loads_as_a_classifier(tmp_path):
    texts = ["where is my new card", "my card still has not come", "card not delivered yet"] * 4
    texts += ["what is the exchange rate", "how much is a euro", "rate for dollars"] * 4
    labels = ["card_arrival"] * 12 + ["exchange_rate"] * 12
    settings = TrainSettings(epochs=3, batch_size=8, lr=3e-3, rank=2, valid_fraction=0.2)
    metrics = train_intent_classifier(texts, labels, tmp_path, settings, progress=False)
    assert metrics["train_examples"] + metrics["valid_examples"] == len(texts)
    classifier = IntentClassifier(tmp_path)
    predictions = classifier.predict(["has my card been delivered", "euro exchange rate"])
    assert [p.label for p in predictions] == ["card_arrival", "exchange_rate"]
    assert all(0.0 < p.confidence <= 1.0 for p in predictions)
