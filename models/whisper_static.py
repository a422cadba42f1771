"""Greedy Whisper decoding with a static KV cache, one fixed-shape step per token.

openai-whisper (and transformers, eagerly) grow the self-attention cache by
concatenation, so every token is a new set of shapes and a new round of kernel
launches: on an H200, 25 greedy steps took 60-180 ms whatever the batch, almost all of
it launch overhead. Here every tensor a step touches is preallocated for a batch
bucket and an audio bucket: self-attention keys/values for `max_tokens` positions
(unfilled positions masked), cross-attention keys/values computed once per batch, and
the greedy choice (suppressed tokens, EOT handling, log-probabilities, the no-speech
probability) done on the device, the step even advancing its own position counter.
So one step is one fixed graph: on CUDA it is captured once (torch.cuda.CUDAGraph) and
each token is a single replay with no host work; on the CPU the same code runs
eagerly. `dynamic_greedy` is the growing-cache loop, kept as the benchmark's eager
baseline.

Semantics are openai-whisper's `decode` with temperature 0, `without_timestamps=True`,
the standard suppress tokens and blank suppression; the tests compare tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.whisper_arch import TokenSpec, model_dims


@dataclass(frozen=True, slots=True)
class Greedy:
    """One utterance's decoding: text tokens (no prompt, no EOT) and whisper's scores."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float


class _Slot:
    """The preallocated state of one (batch, audio positions) bucket, and its CUDA graph."""

    def __init__(self, model: nn.Module, batch: int, audio_ctx: int, positions: int) -> None:
        dims = model_dims(model)
        decoder: Any = model.decoder
        weight: Tensor = decoder.token_embedding.weight
        device, dtype = weight.device, weight.dtype
        layers, heads = dims.n_text_layer, dims.n_text_head
        head_dim = dims.n_text_state // heads
        self.batch, self.positions = batch, positions
        shape = (layers, batch, heads, positions, head_dim)
        self.self_k = torch.zeros(shape, device=device, dtype=dtype)
        self.self_v = torch.zeros(shape, device=device, dtype=dtype)
        cross = (layers, batch, heads, audio_ctx, head_dim)
        self.cross_k = torch.zeros(cross, device=device, dtype=dtype)
        self.cross_v = torch.zeros(cross, device=device, dtype=dtype)
        self.tok = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.seq = torch.zeros(batch, positions + 1, dtype=torch.long, device=device)
        self.sum_logprob = torch.zeros(batch, device=device)
        self.no_speech = torch.zeros(batch, device=device)
        self.graph: Any = None


class StaticGreedyDecoder:
    """Batched greedy decoding of encoded audio, with the step captured as a CUDA graph.

    `cuda_graphs=None` captures on CUDA and runs eagerly elsewhere. `compile=True` runs
    the step through torch.compile first (slow to warm up: for long-lived servers).
    Graphs are kept for the `max_slots` most recent (batch, audio length) buckets;
    callers keep the number of buckets small (powers of two for the batch, a few
    audio lengths). `check_every` is how often (in tokens) the host asks whether every
    sequence has ended: each check is a device sync, so on CUDA a few tokens of
    overshoot are cheaper than a sync per token.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: TokenSpec,
        *,
        max_tokens: int = 96,
        cuda_graphs: bool | None = None,
        compile: bool = False,
        check_every: int | None = None,
        max_slots: int = 64,
    ) -> None:
        self.model = model
        self.spec = spec
        self.dims = model_dims(model)
        self.device = next(model.parameters()).device
        on_cuda = self.device.type == "cuda"
        self.cuda_graphs = on_cuda if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and not on_cuda:
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.check_every = check_every or (4 if on_cuda else 1)
        prompt = spec.prompt
        #: Cache positions: the prompt but its last token is forced, then max_tokens sampled.
        self.positions = len(prompt) - 1 + max_tokens
        if self.positions > self.dims.n_text_ctx:
            raise ValueError(
                f"max_tokens {max_tokens} exceeds Whisper's {self.dims.n_text_ctx} positions"
            )
        self.max_tokens = max_tokens
        self.sample_begin = len(prompt)
        dev = self.device
        vocab = self.dims.n_vocab
        forced = torch.zeros(self.positions, dtype=torch.long)
        forced[: len(prompt) - 1] = torch.tensor(prompt[1:])
        self._forced = forced.to(dev)
        self._prompt = torch.tensor(prompt, dtype=torch.long, device=dev)
        self._bias_rest = torch.zeros(vocab, device=dev)
        self._bias_rest[list(spec.suppress)] = float("-inf")
        self._bias_first = self._bias_rest.clone()
        self._bias_first[list(spec.suppress_first)] = float("-inf")
        self._arange = torch.arange(self.positions, device=dev)
        self._slots: OrderedDict[tuple[int, int], _Slot] = OrderedDict()
        self._max_slots = max_slots
        self._step_fn: Callable[[_Slot], None] = self._step
        if compile:
            self._step_fn = torch.compile(self._step, fullgraph=True, dynamic=False)
        self._pool: Any = None

    @torch.no_grad()
    def decode(self, features: Tensor, batch_bucket: int | None = None) -> list[Greedy]:
        """Greedy tokens for encoded audio [n, audio positions, d], in input order.

        `batch_bucket` (>= n) pads the batch to a shape that already has a graph.
        """
        n, audio_ctx, _ = features.shape
        slot = self._slot(batch_bucket or n, audio_ctx)
        self._reset(slot, features)
        steps = 0
        total = self.positions
        eot = self.spec.eot
        while steps < total:
            chunk = min(self.check_every, total - steps) if steps >= self.sample_begin - 1 else 1
            for _ in range(chunk):
                if slot.graph is not None:
                    slot.graph.replay()
                else:
                    self._step_fn(slot)
            steps += chunk
            if steps >= self.sample_begin and bool((slot.tok[:n] == eot).all()):
                break
        return self._results(slot, n, steps)

    def _slot(self, batch: int, audio_ctx: int) -> _Slot:
        key = (batch, audio_ctx)
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        slot = _Slot(self.model, batch, audio_ctx, self.positions)
        if self.cuda_graphs:
            self._capture(slot)
        self._slots[key] = slot
        if len(self._slots) > self._max_slots:
            self._slots.popitem(last=False)
        return slot

    def _capture(self, slot: _Slot) -> None:
        """Warm the step up on a side stream (allocator, cuBLAS handles), then capture it."""
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                slot.pos.zero_()
                self._step_fn(slot)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        slot.pos.zero_()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step_fn(slot)
        slot.graph = graph

    def _reset(self, slot: _Slot, features: Tensor) -> None:
        """Fresh sequence state, and the cross-attention keys/values of this batch."""
        n = features.shape[0]
        heads = self.dims.n_text_head
        slot.pos.zero_()
        slot.tok.fill_(self.spec.prompt[0])
        slot.seq.zero_()
        slot.seq[:, : self.sample_begin] = self._prompt
        slot.sum_logprob.zero_()
        slot.no_speech.zero_()
        slot.self_k.zero_()
        slot.self_v.zero_()
        features = features.to(slot.cross_k.dtype)
        for layer, block in enumerate(self._blocks()):
            k = block.cross_attn.key(features)
            v = block.cross_attn.value(features)
            slot.cross_k[layer, :n].copy_(
                k.view(n, -1, heads, k.shape[-1] // heads).transpose(1, 2)
            )
            slot.cross_v[layer, :n].copy_(
                v.view(n, -1, heads, v.shape[-1] // heads).transpose(1, 2)
            )

    def _blocks(self) -> list[Any]:
        return list(self.model.decoder.blocks)  # type: ignore[union-attr,arg-type]

    def _step(self, slot: _Slot) -> None:
        """One token for every sequence: fixed shapes, all state in `slot`, no host sync."""
        decoder: Any = self.model.decoder
        pos, tok = slot.pos, slot.tok
        b = tok.shape[0]
        d = self.dims.n_text_state
        heads = self.dims.n_text_head
        x = decoder.token_embedding(tok)[:, None] + decoder.positional_embedding.index_select(
            0, pos
        )
        x = x.to(slot.self_k.dtype)
        valid = (self._arange <= pos).view(1, 1, 1, -1)

        def split(y: Tensor) -> Tensor:
            return y.view(b, 1, heads, d // heads).transpose(1, 2)

        def merge(y: Tensor) -> Tensor:
            return y.transpose(1, 2).reshape(b, 1, d)

        for layer, block in enumerate(decoder.blocks):
            h = block.attn_ln(x)
            slot.self_k[layer].index_copy_(2, pos, split(block.attn.key(h)))
            slot.self_v[layer].index_copy_(2, pos, split(block.attn.value(h)))
            a = F.scaled_dot_product_attention(
                split(block.attn.query(h)), slot.self_k[layer], slot.self_v[layer], attn_mask=valid
            )
            x = x + block.attn.out(merge(a))
            h = block.cross_attn_ln(x)
            a = F.scaled_dot_product_attention(
                split(block.cross_attn.query(h)), slot.cross_k[layer], slot.cross_v[layer]
            )
            x = x + block.cross_attn.out(merge(a))
            x = x + block.mlp(block.mlp_ln(x))
        x = decoder.ln(x)[:, 0]
        logits = (x @ decoder.token_embedding.weight.to(x.dtype).T).float()
        self._choose(slot, logits)

    def _choose(self, slot: _Slot, logits: Tensor) -> None:
        """Greedy choice, as openai-whisper's GreedyDecoder with its logit filters."""
        pos, tok = slot.pos, slot.tok
        b = tok.shape[0]
        spec = self.spec
        if spec.no_speech is not None:
            at_sot = pos == 0
            prob = logits.softmax(dim=-1)[:, spec.no_speech]
            slot.no_speech.copy_(torch.where(at_sot, prob, slot.no_speech))
        first = pos == self.sample_begin - 1
        logits = logits + torch.where(first, self._bias_first, self._bias_rest)
        sampled = logits.argmax(dim=-1)
        logprob = F.log_softmax(logits, dim=-1).gather(1, sampled[:, None])[:, 0]
        sampling = pos >= self.sample_begin - 1
        alive = tok != spec.eot
        slot.sum_logprob.add_(torch.where(sampling & alive, logprob, torch.zeros_like(logprob)))
        chosen = torch.where(alive, sampled, torch.full_like(sampled, spec.eot))
        nxt = torch.where(sampling, chosen, self._forced.index_select(0, pos).expand(b))
        slot.seq.index_copy_(1, pos + 1, nxt.view(b, 1))
        tok.copy_(nxt)
        pos.add_(1)

    def _results(self, slot: _Slot, n: int, steps: int) -> list[Greedy]:
        """Tokens up to the first EOT; avg log-probability as whisper (EOT counts as one)."""
        seq = slot.seq[:n, self.sample_begin : steps + 1].tolist()
        sums = slot.sum_logprob[:n].tolist()
        no_speech = slot.no_speech[:n].tolist()
        out = []
        for tokens, total, nsp in zip(seq, sums, no_speech, strict=True):
            if self.spec.eot in tokens:
                tokens = tokens[: tokens.index(self.spec.eot)]
            out.append(Greedy(tokens, total / (len(tokens) + 1), nsp))
        return out


@torch.no_grad()
def dynamic_greedy(
    model: nn.Module, spec: TokenSpec, features: Tensor, max_tokens: int
) -> list[list[int]]:
    """The growing-cache greedy loop (openai-whisper's algorithm), the eager baseline.

    Each step concatenates one position to every layer's cache: new shapes, new kernel
    launches, a host sync per token to test for EOT. Tokens only (scores are not needed
    by the benchmark).
    """
    decoder: Any = model.decoder
    b = features.shape[0]
    d = model_dims(model).n_text_state
    heads = model_dims(model).n_text_head
    dtype = next(model.parameters()).dtype
    features = features.to(dtype)

    def split(y: Tensor) -> Tensor:
        return y.view(b, y.shape[1], heads, d // heads).transpose(1, 2)

    cross = [
        (split(blk.cross_attn.key(features)), split(blk.cross_attn.value(features)))
        for blk in decoder.blocks
    ]
    cache: list[tuple[Tensor, Tensor] | None] = [None] * len(cross)
    bias = torch.zeros(model_dims(model).n_vocab, device=features.device)
    bias[list(spec.suppress)] = float("-inf")
    first_bias = bias.clone()
    first_bias[list(spec.suppress_first)] = float("-inf")
    tokens = torch.tensor([spec.prompt] * b, device=features.device)
    inputs, offset, out = tokens, 0, []
    for i in range(max_tokens):
        n = inputs.shape[1]
        x = (
            decoder.token_embedding(inputs) + decoder.positional_embedding[offset : offset + n]
        ).to(dtype)
        for layer, blk in enumerate(decoder.blocks):
            h = blk.attn_ln(x)
            k, v = split(blk.attn.key(h)), split(blk.attn.value(h))
            past = cache[layer]
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            cache[layer] = (k, v)
            a = F.scaled_dot_product_attention(split(blk.attn.query(h)), k, v, is_causal=n > 1)
            x = x + blk.attn.out(a.transpose(1, 2).reshape(b, n, d))
            h = blk.cross_attn_ln(x)
            a = F.scaled_dot_product_attention(split(blk.cross_attn.query(h)), *cross[layer])
            x = x + blk.cross_attn.out(a.transpose(1, 2).reshape(b, n, d))
            x = x + blk.mlp(blk.mlp_ln(x))
        logits = (decoder.ln(x)[:, -1] @ decoder.token_embedding.weight.to(x.dtype).T).float()
        nxt = (logits + (first_bias if i == 0 else bias)).argmax(dim=-1)
        ended = tokens[:, -1] == spec.eot
        nxt[ended] = spec.eot
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        offset, inputs = offset + n, nxt[:, None]
        if bool((nxt == spec.eot).all()):
            break
    for row in tokens[:, len(spec.prompt) :].tolist():
        out.append(row[: row.index(spec.eot)] if spec.eot in row else row)
    return out
