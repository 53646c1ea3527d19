"""Stable-Baselines3 unchanged on every MovieLens id: its check_env, PPO (MultiInputPolicy) on every id (the
conversational ones through ``flat_action=True``), DQN on the single-item ids, the fast path
:class:`rlrec.envs.sb3.SB3VecEnv` (one jitted call for every user), and the item-features extractor.

Training budgets are tiny (a rollout or two): these tests show the pieces fit, not that SB3 learns; the
learning comparison is examples/sb3_ppo.py.
"""

import subprocess
import sys

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor
from synthetic import UNIT, synthetic_env, synthetic_world

import rlrec
from rlrec.envs.gym import GymFlatConversational, InvalidActionError, RecGymEnv, RecVectorEnv
from rlrec.envs.sb3 import ItemFeaturesExtractor, SB3VecEnv, item_features
from rlrec.envs.specs import REGISTRY
from rlrec.errors import InputError

# Every MovieLens id with the synthetic catalog and users of conftest.py (no language model), passed as overrides.
WORLD = synthetic_world(**UNIT)
# Every MovieLens id, read off the registry: the conversational ones too (flat_action=True, as SB3 needs).
MOVIELENS_IDS = [env_id for env_id in rlrec.registered_envs() if env_id.startswith("MovieLens")]
CONVERSATIONAL_IDS = [env_id for env_id in MOVIELENS_IDS if REGISTRY[env_id].conversational]
SINGLE_ITEM_IDS = [env_id for env_id in MOVIELENS_IDS
                   if REGISTRY[env_id].slate_size == 1 and not REGISTRY[env_id].conversational]
# A small PPO: one 64-step rollout per update, 2 epochs of 32-step minibatches.
SMALL_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}


def test_the_id_lists_cover_every_kind_of_movielens_id():
    # The parametrised tests below are only as good as their lists: every MovieLens id, both kinds of action.
    assert len(MOVIELENS_IDS) == sum(env_id.startswith("MovieLens") for env_id in REGISTRY)
    assert CONVERSATIONAL_IDS and len(CONVERSATIONAL_IDS) < len(MOVIELENS_IDS)


@pytest.mark.filterwarnings("ignore::UserWarning")  # SB3 suggests flattening the (H, k) history: a suggestion
@pytest.mark.parametrize("env_id", MOVIELENS_IDS)
def test_sb3_check_env_and_ppo_train_on_every_movielens_id(env_id):
    env = gymnasium.make(f"rlrec/{env_id}", max_steps=40, flat_action=True, **WORLD)
    assert isinstance(env.action_space, gymnasium.spaces.MultiDiscrete | gymnasium.spaces.Discrete)
    check_env(env.unwrapped)  # raises on any API problem (it was the 0-d "step" box)
    model = PPO("MultiInputPolicy", env, **SMALL_PPO).learn(128)
    assert model.num_timesteps == 128
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)
    # SB3 samples each slot of a slate on its own: the env accepted whatever it sent (repeats shown once).
    env.close()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", SINGLE_ITEM_IDS)
def test_sb3_dqn_trains_on_the_single_item_ids(env_id):
    env = gymnasium.make(f"rlrec/{env_id}", max_steps=40, **WORLD)
    model = DQN("MultiInputPolicy", env, learning_starts=32, buffer_size=1_000, batch_size=16, train_freq=4,
                target_update_interval=50, seed=0, device="cpu").learn(128)
    assert model.num_timesteps == 128 and model._n_updates > 0
    assert model.replay_buffer.size() == 128


def test_sb3_vec_env_steps_exactly_as_the_gymnasium_vector_env():
    functional = synthetic_env("MovieLens-SessionSlate-v0", items=30, slate_size=3, max_steps=4)
    ours = SB3VecEnv(RecVectorEnv(functional=functional, num_envs=5))
    reference = RecVectorEnv(functional=functional, num_envs=5)
    ours.seed(11)
    obs = ours.reset()
    expected, _ = reference.reset(seed=11)
    assert all(np.array_equal(obs[name], expected[name]) for name in expected)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(9):
        actions = rng.integers(0, 30, size=(5, 3))  # repeats included, as SB3 would send
        obs, rewards, dones, infos = ours.step(actions)
        expected, reward, terminated, truncated, info = reference.step(actions)
        assert all(np.array_equal(obs[name], expected[name]) for name in expected)
        np.testing.assert_array_equal(rewards, reward)
        np.testing.assert_array_equal(dones, terminated | truncated)
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 5
        for i in range(5):
            assert infos[i]["regret"] == info["regret"][i]
            assert infos[i]["TimeLimit.truncated"] == bool(truncated[i] and not terminated[i])
            assert ("terminal_observation" in infos[i]) == bool(dones[i])
            if dones[i]:
                finished += 1
                final = infos[i]["terminal_observation"]
                assert all(np.array_equal(final[name], info["final_obs"][name][i]) for name in final)
                assert ours.observation_space.contains(final)
    assert finished >= 5  # max_steps=4: every user finished at least once in 9 steps


def test_sb3_ppo_on_the_vec_env_logs_episodes():
    envs = VecMonitor(SB3VecEnv.make("MovieLens-SessionSlate-v0", num_envs=16, max_steps=8, **WORLD))
    model = PPO("MultiInputPolicy", envs, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(2 * 16 * 16)
    assert model.num_timesteps == 512
    lengths = [episode["l"] for episode in model.ep_info_buffer]
    assert lengths and max(lengths) <= 8  # VecMonitor saw the episodes end (horizon 8)


def test_sb3_vec_env_refuses_what_it_cannot_wrap():
    with pytest.raises(TypeError, match="DummyVecEnv"):
        SB3VecEnv(gymnasium.make("rlrec/MovieLens-Bandit-v0", **WORLD))
    functional = synthetic_env("MovieLens-Bandit-v0")
    wrapped = gymnasium.wrappers.vector.RecordEpisodeStatistics(RecVectorEnv(functional=functional, num_envs=2))
    with pytest.raises(TypeError, match="VecMonitor"):
        SB3VecEnv(wrapped)


def test_sb3_vec_env_refuses_a_conversational_env_clearly():
    with pytest.raises(TypeError, match=r"does not take Dict action spaces.*make it with flat_action=True"):
        SB3VecEnv.make("MovieLens-Conversational-v0", num_envs=2, **WORLD)


# -- Flat actions: the conversational ids as SB3 takes them ------------------------------------------------------


def _dict_action(flat: np.ndarray, slate_size: int) -> dict:
    """The ``{"slate", "question"}`` action a flat action stands for, written out by hand."""
    slate = flat[..., 0] if slate_size == 1 else flat[..., :slate_size]
    return {"slate": slate, "question": flat[..., slate_size] - 1}


@pytest.mark.parametrize("env_id", ["MovieLens-Conversational-v0", "MovieLens-ConversationalSessionSlate-v0"])
def test_a_flat_action_steps_exactly_as_its_dict_action(env_id):
    functional = synthetic_env(env_id, items=30, max_steps=5)
    env, params = functional
    k, num_key_terms = env.slate_size, env.num_key_terms(params)
    ours = SB3VecEnv(RecVectorEnv(functional=functional, num_envs=4, flat_action=True))
    reference = RecVectorEnv(functional=functional, num_envs=4)
    single, single_reference = RecGymEnv(functional=functional, flat_action=True), RecGymEnv(functional=functional)
    ours.seed(5)
    obs = ours.reset()
    expected, _ = reference.reset(seed=5)
    single.reset(seed=5), single_reference.reset(seed=5)
    rng = np.random.default_rng(0)
    questions = []
    for _ in range(8):
        actions = np.column_stack([rng.integers(0, 30, size=(4, k)), rng.integers(0, num_key_terms + 1, size=4)])
        obs, rewards, dones, infos = ours.step(actions)
        expected, reward, terminated, truncated, info = reference.step(_dict_action(actions, k))
        assert all(np.array_equal(obs[name], expected[name]) for name in expected)
        np.testing.assert_array_equal(rewards, reward)
        np.testing.assert_array_equal(dones, terminated | truncated)
        np.testing.assert_array_equal([i["question"] for i in infos], actions[:, k] - 1)
        np.testing.assert_array_equal([i["answer"] for i in infos], info["answer"])
        questions += list(actions[:, k] - 1)
        one = single.step(actions[0])
        other = single_reference.step(_dict_action(actions[0], k))
        assert all(np.array_equal(one[0][name], other[0][name]) for name in other[0]) and one[1:4] == other[1:4]
        assert one[4]["question"] == other[4]["question"] == actions[0, k] - 1
    assert -1 in questions and max(questions) >= 0  # both "no question" and questions were sent


def test_flat_action_spaces_sample_distinct_slates_and_leave_plain_ids_alone():
    env = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", flat_action=True, **WORLD)
    space = env.action_space
    num_key_terms = env.unwrapped.env.num_key_terms(env.unwrapped.params)
    assert isinstance(space, GymFlatConversational)
    assert space.nvec.tolist() == [200] * 5 + [num_key_terms + 1]
    space.seed(0)
    samples = np.stack([space.sample() for _ in range(200)])
    assert all(len(set(row[:5])) == 5 for row in samples) and all(space.contains(row) for row in samples)
    assert samples[:, 5].min() == 0 and samples[:, 5].max() > 0  # "no question" is sampled too
    assert space.contains(np.array([3, 3, 4, 5, 6, 0]))  # a repeat is shown once, as on slate ids
    strict = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", flat_action=True, strict_slates=True, **WORLD)
    assert not strict.action_space.contains(np.array([3, 3, 4, 5, 6, 0]))
    vector = gymnasium.make_vec("rlrec/MovieLens-ConversationalSlate-v0", num_envs=3, flat_action=True, **WORLD)
    assert vector.action_space == GymFlatConversational(200, 5, num_key_terms, batch=3, distinct=False)
    batch = vector.action_space.sample()
    assert batch.shape == (3, 6) and all(len(set(row[:5])) == 5 for row in batch)
    for env_id in ("MovieLens-SessionSlate-v0", "MovieLens-Bandit-v0"):  # already flat: flat_action changes nothing
        assert (gymnasium.make(f"rlrec/{env_id}", flat_action=True, **WORLD).action_space
                == gymnasium.make(f"rlrec/{env_id}", **WORLD).action_space)


@pytest.mark.parametrize(
    "action, message",
    [
        ([1, 2, 3, 4, 5], r"5 item ids then the question plus one \(0 asks nothing\), shape \(6,\); got shape \(5,\)"),
        ([1, 2, 3, 4, 5, 201], r"last entry 201 is out of range: 0 asks nothing, 1..200 ask key-terms 0..199"),
        ([1, 2, 3, 4, 5, -1], r"last entry -1 is out of range"),
        ([1.0, 2, 3, 4, 5, 0], r"must hold integers .* got dtype float64"),
        ([True] * 6, r"must hold integers .* got dtype bool"),
        ([1, 2, 3, 4, 200, 0], r"Item index 200 is out of range: this catalog has items 0..199"),
        ([[1, 2], [3]], r"is not an array"),
        ({"slate": [1, 2, 3, 4, 5], "question": 0}, r"got shape \(\)"),
    ],
)
def test_bad_flat_actions_raise_clear_errors(action, message):
    env = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", flat_action=True, **WORLD)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=message):
        env.step(action)


def test_bad_flat_actions_raise_clear_errors_in_the_vector_env_and_strict_mode():
    vector = gymnasium.make_vec("rlrec/MovieLens-ConversationalSlate-v0", num_envs=2, flat_action=True, **WORLD)
    vector.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(2, 6\); got shape \(6,\)"):
        vector.step(np.array([1, 2, 3, 4, 5, 0]))
    strict = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", flat_action=True, strict_slates=True, **WORLD)
    strict.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"\[3, 3, 4, 5, 6\] repeats an item"):
        strict.step(np.array([3, 3, 4, 5, 6, 0]))
    assert issubclass(InvalidActionError, InputError)


# -- ItemFeaturesExtractor ----------------------------------------------------------------------------------------


def test_item_features_are_the_bandit_features_from_any_kind_of_env():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlrec.envs.recsys import bandit_features

    functional = synthetic_env("MovieLens-BanditSlate-v0", items=30)
    expected = np.asarray(bandit_features(functional[1]), np.float32)
    assert expected.shape == (30, 8 + 2)
    single = RecGymEnv(functional=functional)
    for env in (single, gymnasium.wrappers.RecordEpisodeStatistics(single), RecVectorEnv(functional=functional),
                VecMonitor(SB3VecEnv(RecVectorEnv(functional=functional))), DummyVecEnv([lambda: single])):
        np.testing.assert_array_equal(item_features(env), expected)
    with pytest.raises(TypeError, match="item_features reads an rlrec env's catalog.*got CartPoleEnv"):
        item_features(gymnasium.make("CartPole-v1"))


def test_the_extractor_reads_clicked_and_shown_items_as_their_features():
    # Two past steps of slates of 2: before the first step (padding, -1) and [4, 7] with a click in slot 1.
    env = RecGymEnv("MovieLens-BanditSlate-v0", slate_size=2, history_length=2, **synthetic_world(items=30))
    table = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    extractor = ItemFeaturesExtractor(env.observation_space, item_features=table, net_arch=(16, 5))
    request = np.arange(8, dtype=np.float32)
    obs = {"history_items": [[-1, -1], [4, 7]], "history_clicks": [-1, 1], "history_feedback": [0.0, 0.6],
           "progress": [0.25], "request": request}
    batch = {name: torch.as_tensor(np.array([value] * 2), dtype=torch.float32) for name, value in obs.items()}
    by_hand = np.concatenate([
        np.zeros(3), table[7],  # the clicked item per step (none at the padding step)
        np.zeros(3), (table[4] + table[7]) / 2,  # the shown slate's mean per step
        [0.0, 1.0],  # a click per step
        [0.0, 0.6], [0.25], request,  # the other entries by name: history_feedback, progress, request
    ])
    inputs = extractor.inputs(batch)
    np.testing.assert_allclose(inputs.numpy(), np.stack([by_hand] * 2), rtol=1e-6)
    features = extractor(batch)
    assert features.shape == (2, 5) and extractor.features_dim == 5
    assert [name for name, _ in extractor.named_parameters()] == ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
                                                                  "mlp.2.bias"]  # the table is not trained


def _extractor_kwargs(envs, **kwargs) -> dict:
    return dict(features_extractor_class=ItemFeaturesExtractor,
                features_extractor_kwargs=dict(item_features=item_features(envs), **kwargs))


@pytest.mark.parametrize("env_id", ["MovieLens-SessionSlate-v0", "MovieLens-ConversationalSession-v0"])
def test_sb3_ppo_trains_with_the_extractor(env_id):
    envs = VecMonitor(SB3VecEnv.make(env_id, num_envs=8, max_steps=8, flat_action=True, **WORLD))
    model = PPO("MultiInputPolicy", envs, policy_kwargs=_extractor_kwargs(envs, net_arch=(32,)), n_steps=16,
                batch_size=64, n_epochs=2, seed=0, device="cpu")
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ItemFeaturesExtractor)
    weights, table = extractor.mlp[0].weight.detach().clone(), extractor.item_table.clone()
    model.learn(2 * 16 * 8)
    assert model.num_timesteps == 256
    assert not torch.equal(extractor.mlp[0].weight, weights)  # its MLP learnt
    assert torch.equal(extractor.item_table, table)  # the item features did not move
    actions, _ = model.predict(envs.reset(), deterministic=True)
    assert envs.action_space.contains(actions[0]) and actions.shape[0] == 8


def test_the_extractor_refuses_what_it_cannot_use():
    env = RecGymEnv("MovieLens-Bandit-v0", **synthetic_world(items=30))
    space, table = env.observation_space, item_features(env)
    with pytest.raises(InputError, match=r"one row per item of the env \(30\), got shape \(29, 10\)"):
        ItemFeaturesExtractor(space, item_features=table[:29])
    with pytest.raises(InputError, match=r"got shape \(300,\)"):
        ItemFeaturesExtractor(space, item_features=table.ravel())
    with pytest.raises(InputError, match="NaN or infinite"):
        ItemFeaturesExtractor(space, item_features=np.where(np.eye(30, 10) > 0, np.nan, table))
    for net_arch in ((), (64, 0)):
        with pytest.raises(InputError, match=r"net_arch must be one or more layer sizes >= 1"):
            ItemFeaturesExtractor(space, item_features=table, net_arch=net_arch)
    with pytest.raises(TypeError, match="reads an rlrec observation"):
        ItemFeaturesExtractor(gymnasium.spaces.Box(0, 1, (4,)), item_features=table)


def test_importing_rlrec_loads_neither_torch_nor_sb3():
    code = ("import sys, rlrec, rlrec.envs, rlrec.envs.gym; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'stable_baselines3'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sb3_ppo_with_the_extractor_on_movielens_conversational_slates(movielens):
    # The real catalog and key-terms (the LM's embeddings): the flat action and the extractor at full size.
    envs = VecMonitor(SB3VecEnv.make("MovieLens-ConversationalSessionSlate-v0", num_envs=8, max_steps=10,
                                     flat_action=True))
    assert envs.action_space.nvec.tolist()[:5] == [len(movielens)] * 5
    model = PPO("MultiInputPolicy", envs, policy_kwargs=_extractor_kwargs(envs), n_steps=16, batch_size=64,
                n_epochs=1, seed=0, device="cpu").learn(2 * 16 * 8)
    assert model.num_timesteps == 256 and model.ep_info_buffer
