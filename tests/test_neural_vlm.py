"""caption/vlm: the three prompt modes through the real load path with tiny models."""
from __future__ import annotations

import re

import neural_fixtures as nf
import numpy as np
import pytest

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext
from groundsynth.engines.neural.vlm import composition_text, prompts_for, strip_numbers
from groundsynth.request.errors import FailedPrecondition


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    return {"text": nf.tiny_causal_lm(root / "lm"), "vision": nf.tiny_vision_encoder_decoder(root / "ved")}


def _inputs(n=3, size=32):
    rng = np.random.default_rng(5)
    return [rng.random((4, size, size), dtype=np.float32) for _ in range(n)], nf.random_masks(n, size)


def test_prompts_follow_the_original_modes():
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 6:] = 6
    mask[0, 0] = 255
    comp = composition_text(mask)
    assert comp == "Tree 60%, Water 40%"               # classes present only, largest first
    vision, text, hybrid = (prompts_for(m, 5, mask) for m in ("vision", "text", "hybrid"))
    assert all(comp not in p and "%" not in p for p in vision)     # vision sees the image only
    assert all(comp in p for p in text + hybrid)
    for ps in (vision, text, hybrid):
        assert len(set(ps)) == 5                       # greedy decoding: vary the wording per caption
    assert len(set(prompts_for("vision", 7, mask))) == 7


def test_strip_numbers_removes_percentages():
    assert strip_numbers("Crop fields (40%) and water 25 percent, near 3 villages.") == \
        "Crop fields and water, near villages."


@pytest.mark.parametrize("mode", ["text", "vision", "hybrid"])
def test_vlm_modes_caption_every_tile(models, mode):
    weights = models["text" if mode == "text" else "vision"]
    images, masks = _inputs()
    free = get_engine("caption", "vlm")({"weights": str(weights), "mode": mode, "max_new_tokens": "10",
                                         "forbid_percentages": "false", "batch_size": "4"}, EngineContext())
    caps = free.caption(images, masks, [1, 2, 3])
    assert len(caps) == 3 and all(len(c) == 5 for c in caps)
    assert all(c.strip() for cs in caps for c in cs)
    # the tiny models were taught text full of percentages: without the ban they leak them ...
    assert any(re.search(r"\d|%", c) for cs in caps for c in cs)
    # ... with forbid_percentages (the default) no digit or % survives, and text is still produced
    banned = get_engine("caption", "vlm")({"weights": str(weights), "mode": mode, "max_new_tokens": "10",
                                           "batch_size": "2"}, EngineContext())
    caps = banned.caption(images, masks, [1, 2, 3])
    assert all(len(c) == 5 for c in caps)
    assert not any(re.search(r"\d|%", c) for cs in caps for c in cs)
    assert any(c.strip() for cs in caps for c in cs)


def test_vlm_batching_does_not_change_greedy_captions(models):
    images, masks = _inputs(2)
    params = {"weights": str(models["text"]), "mode": "text", "max_new_tokens": "8", "n_captions": "3"}
    a = get_engine("caption", "vlm")({**params, "batch_size": "1"}).caption(images, masks, [0, 0])
    b = get_engine("caption", "vlm")({**params, "batch_size": "6"}).caption(images, masks, [0, 0])
    assert a == b


def test_vlm_missing_weights_name_the_path(tmp_path):
    E = get_engine("caption", "vlm")
    images, masks = _inputs(1)
    with pytest.raises(FailedPrecondition, match=str(tmp_path / "nothing")):
        E({"weights": str(tmp_path / "nothing"), "mode": "text"}).caption(images, masks, [0])
    ok, reason = E.availability(str(tmp_path))
    assert not ok and str(tmp_path / "vlm") in reason


def test_chat_vlm_with_processor_vision_and_hybrid(tmp_path):
    """A chat-template VLM (tiny LLaVA) goes through AutoProcessor + apply_chat_template."""
    weights = nf.tiny_llava(tmp_path / "llava")
    images, masks = _inputs(3)
    for mode in ("vision", "hybrid"):
        eng = get_engine("caption", "vlm")({"weights": str(weights), "mode": mode, "max_new_tokens": "6",
                                            "batch_size": "4"}, EngineContext())
        caps = eng.caption(images, masks, [0, 1, 2])
        assert len(caps) == 3 and all(len(c) == 5 for c in caps)
        assert any(c for cs in caps for c in cs)
        assert not any(re.search(r"\d|%", c) for cs in caps for c in cs)
    # the chat template wraps each prompt with the image placeholder the processor expands
    from groundsynth.engines.neural.vlm import _chat

    lm = eng._model()
    text = _chat(lm.processor, "Describe it.", True)
    assert text.startswith("<image>") and "Describe it." in text


def test_vlm_corrupt_weights_name_the_path(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "gpt2", "n_embd": 8')
    (bad / "model.safetensors").write_bytes(b"\x01\x02")
    for mode in ("text", "vision"):
        with pytest.raises(FailedPrecondition) as err:
            get_engine("caption", "vlm")({"weights": str(bad), "mode": mode})
        assert str(bad) in err.value.message and "Traceback" not in err.value.message


def test_blip_style_vlm_takes_the_prompt_as_prefix_and_does_not_echo_it(tmp_path):
    weights = nf.tiny_blip(tmp_path / "blip")
    images, masks = _inputs(2)
    eng = get_engine("caption", "vlm")({"weights": str(weights), "mode": "hybrid", "max_new_tokens": "6",
                                        "forbid_percentages": "false"}, EngineContext())
    caps = eng.caption(images, masks, [0, 1])
    assert all(len(c) == 5 for c in caps) and any(c for cs in caps for c in cs)
    tok = eng._model().tokenizer
    for mask, cs in zip(masks, caps, strict=True):
        for prompt, cap in zip(prompts_for("hybrid", 5, mask), cs, strict=True):
            echoed = tok.decode(tok(prompt)["input_ids"], skip_special_tokens=True)
            assert not cap.startswith(echoed)


def test_text_mode_uses_the_tokenizer_chat_template(models, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    chat = tmp_path / "chat-lm"
    shutil.copytree(models["text"], chat)
    tok = AutoTokenizer.from_pretrained(str(chat))
    tok.chat_template = "{% for m in messages %}user : {{ m['content'] }}{% endfor %} ( answer )"
    tok.save_pretrained(str(chat))
    images, masks = _inputs(2)
    eng = get_engine("caption", "vlm")({"weights": str(chat), "mode": "text", "max_new_tokens": "6"})
    from groundsynth.engines.neural.vlm import _chat, _has_chat_template

    lm = eng._model()
    assert _has_chat_template(lm.tokenizer)
    assert _chat(lm.tokenizer, "land cover", False) == "user : land cover ( answer )"
    caps = eng.caption(images, masks, [0, 1])
    assert all(len(c) == 5 for c in caps) and any(c for cs in caps for c in cs)
    assert not any(re.search(r"\d|%", c) for cs in caps for c in cs)
