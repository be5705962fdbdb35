"""PyTorch dataset over a demonstration store, split by episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ampczoo.data.store import EpisodeStore

SPLITS = ("train", "val", "test")


def split_episodes(
    episode_ids: np.ndarray, val_fraction: float, seed: int, test_fraction: float = 0.0
) -> dict[str, set]:
    """Deterministic split of episode ids into {"train", "val", "test"} sets.

    The ids are sorted first, so the split does not depend on the storage order. At least
    one episode goes to val when there are two or more episodes and ``val_fraction > 0``.
    The test episodes are taken after the val ones from the same permutation, so adding a
    test split leaves the val split unchanged (and is empty for ``test_fraction = 0``)."""
    ids = np.sort(np.asarray(episode_ids))
    perm = np.random.default_rng(seed).permutation(ids)
    n_val = int(round(val_fraction * len(ids)))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    n_test = min(int(round(test_fraction * len(ids))), max(len(ids) - n_val - 1, 0))
    return {
        "val": set(perm[:n_val].tolist()),
        "test": set(perm[n_val : n_val + n_test].tolist()),
        "train": set(perm[n_val + n_test :].tolist()),
    }


class DemonstrationDataset(Dataset):
    """Samples of one split of an :class:`~ampczoo.data.store.EpisodeStore`, in memory.

    Items are dicts: ``obs`` float32 (obs_dim,) flat env observation; ``u_seq`` float32
    (N, nu) the noise-free optimal input sequence (KUKA: rad/s; 3-DOF arm: N m); with
    ``history = H > 0`` also ``obs_history`` float32 (H, obs_dim), the sample's observation
    and the H−1 before it in its episode, oldest first, padded with the episode's first
    observation (as :class:`ampczoo.wrappers.HistoryObservation`). Windows follow the stored
    rows: a sample the collection dropped (failed solve) is skipped, not padded.
    Episodes (not samples) are split, so train, val and test never share an episode.

    Stores of per-step actions (``ampczoo collect`` with a policy, robomimic imports: an
    ``action`` array and no ``u_seq``) serve as ``u_seq`` the chunk of the next
    ``action_horizon`` actions of the episode (A_t .. A_{t+N-1}, the episode's last action
    repeated past its end, as diffusion policy's padding). ``action_lead = L`` starts the chunk
    L steps earlier (A_{t-L} .. A_{t-L+N-1}, the episode's first action repeated before its
    start): Diffusion Policy predicts from the first of its T_o observations (L = T_o − 1).
    Episodes stored without rows (failed ones of a collection) contribute no samples.

    ``image_keys``: stored per-step arrays ``obs.<key>`` (e.g. camera images (84, 84, 3) uint8)
    served as ``images.<key>``: (H, ...) windows like ``obs_history`` (history > 0), else the
    sample's own (...); kept in memory as stored (uint8 stays uint8).

    ``branch_labels``: serve ``branch`` int64 (), the IK branch of the sample's episode, from a
    multi-modal store (``ampczoo collect --cold-start branches``); a store without the labels
    (single-mode data) raises ValueError.
    """

    def __init__(
        self,
        path: str | Path,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        history: int = 0,
        test_fraction: float = 0.0,
        action_horizon: int = 1,
        action_lead: int = 0,
        image_keys: tuple[str, ...] = (),
        branch_labels: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ValueError(
                f"val_fraction and test_fraction must be in [0, 1), got "
                f"{val_fraction}, {test_fraction}"
            )
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if int(action_horizon) != action_horizon or action_horizon < 1:
            raise ValueError(f"action_horizon must be a positive integer, got {action_horizon}")
        if int(action_lead) != action_lead or action_lead < 0:
            raise ValueError(f"action_lead must be an integer >= 0, got {action_lead}")
        store = EpisodeStore(path, mode="r")
        self.path, self.split = Path(path), split
        self.val_fraction, self.seed = val_fraction, seed
        self.test_fraction, self.history = test_fraction, int(history)
        self.action_horizon, self.action_lead = int(action_horizon), int(action_lead)
        self.image_keys = tuple(image_keys)
        self.attrs = store.attrs
        ids = store.episode_ids()
        chosen = split_episodes(ids, val_fraction, seed, test_fraction)[split]
        self.episode_ids = np.array(sorted(chosen), dtype=np.int64)
        mask, sample_episode = self._sample_mask(store, chosen)
        #: (len,) episode id of every sample (samples of an episode are contiguous)
        self.sample_episode = sample_episode[mask]
        all_obs = store.read("obs") if store.n_samples else np.zeros((0, 0))
        self.obs = all_obs[mask]
        self.u_seq = self._sequences(store, self.action_horizon, self.action_lead)[mask]
        self._obs_t = torch.from_numpy(self.obs.astype(np.float32))
        self._u_t = torch.from_numpy(self.u_seq.astype(np.float32))
        #: history > 0 only: (T, D) observations of every stored row, (len, H) window rows
        self._all_obs_t: torch.Tensor | None = None
        self._window_idx: torch.Tensor | None = None
        if self.history:
            self._all_obs_t = torch.from_numpy(all_obs.astype(np.float32))
            self._window_idx = torch.from_numpy(self._windows(store, self.history)[mask])
        #: image_keys only: key -> (T, ...) stored array of every row (as stored)
        self._images = self._read_images(store, self.image_keys)
        self._rows = torch.from_numpy(np.flatnonzero(mask))
        #: branch_labels only: (len,) IK branch index of every sample
        self.branch: np.ndarray | None = self._read_branches(store)[mask] if branch_labels else None

    @staticmethod
    def _read_branches(store: EpisodeStore) -> np.ndarray:
        """(T,) int64 branch labels; ValueError when the store has none (not multi-modal)."""
        if "branch" not in store.keys:
            cold = (store.attrs.get("expert_config") or {}).get("cold_start")
            raise ValueError(
                f"{store.path} has no branch labels (expert cold_start {cold!r}): a policy "
                "that needs them must be trained on a multi-modal store "
                "(`ampczoo collect --cold-start branches`)"
            )
        return store.read("branch").astype(np.int64)

    @staticmethod
    def _read_images(store: EpisodeStore, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """{key: (T, ...) tensor of data/obs.<key>}; ValueError naming a missing array."""
        out = {}
        for key in keys:
            name = f"obs.{key}"
            if name not in store.keys:
                raise ValueError(f"{store.path} has no array {name!r}; stored: {store.keys}")
            out[key] = torch.from_numpy(np.ascontiguousarray(store.read(name)))
        return out

    @staticmethod
    def _sequences(store: EpisodeStore, action_horizon: int, action_lead: int = 0) -> np.ndarray:
        """(T, N, nu) of every stored row: ``u_seq``, or the action chunks (see the class
        docstring) of a store of per-step actions."""
        if not store.n_samples:
            return np.zeros((0, 0, 7))
        keys = store.keys
        if "u_seq" in keys:
            if action_lead:
                raise ValueError(
                    f"{store.path} stores planned sequences u_seq; action_lead needs a store of "
                    "per-step actions"
                )
            return store.read("u_seq")
        if "action" not in keys:
            raise ValueError(f"{store.path} has neither u_seq nor action arrays; stored: {keys}")
        actions = store.read("action")
        actions = actions.reshape(len(actions), -1)
        ends = store.episode_ends
        lengths = np.diff(np.concatenate([[0], ends]))
        row_end = np.repeat(ends, lengths)  # (T,) exclusive
        row_start = row_end - np.repeat(lengths, lengths)
        rows = np.arange(len(actions))[:, None] - action_lead + np.arange(action_horizon)[None]
        rows = np.clip(rows, row_start[:, None], row_end[:, None] - 1)
        return actions[rows]

    @staticmethod
    def _windows(store: EpisodeStore, history: int) -> np.ndarray:
        """(T, H) row indices of every stored sample's history window (first-row padding)."""
        ends = store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        row_start = np.repeat(starts, np.diff(np.concatenate([[0], ends])))
        rows = np.arange(len(row_start))
        return np.maximum(rows[:, None] - np.arange(history - 1, -1, -1)[None], row_start[:, None])

    def batch(self, idx: torch.Tensor | slice | int) -> dict[str, torch.Tensor]:
        """The samples ``idx`` stacked: {"obs": (B, D), "u_seq": (B, N, nu)[, "obs_history":
        (B, H, D)]} float32 tensors (CPU); an int index gives one sample, without the B axis."""
        out = {"obs": self._obs_t[idx], "u_seq": self._u_t[idx]}
        if self.branch is not None:
            out["branch"] = torch.from_numpy(self.branch)[idx]
        if self._all_obs_t is not None and self._window_idx is not None:
            out["obs_history"] = self._all_obs_t[self._window_idx[idx]]
        for key, arr in self._images.items():
            rows = self._window_idx[idx] if self._window_idx is not None else self._rows[idx]
            out[f"images.{key}"] = arr[rows]
        return out

    @staticmethod
    def _sample_mask(store: EpisodeStore, chosen: set) -> tuple[np.ndarray, np.ndarray]:
        """((T,) bool: samples whose episode is in ``chosen``, (T,) episode id per sample)."""
        ends = store.episode_ends
        lengths = np.diff(np.concatenate([[0], ends]))
        sample_episode = np.repeat(store.episode_ids(), lengths)
        return np.isin(sample_episode, list(chosen)), sample_episode

    def window_starts(self, length: int) -> np.ndarray:
        """Indices i such that samples i .. i+length-1 belong to one episode (windows of
        consecutive stored steps for recurrent policies; a dropped sample leaves a gap)."""
        if length <= 0:
            raise ValueError(f"length must be > 0, got {length}")
        ep = np.asarray(self.sample_episode)
        if len(ep) < length:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(ep[: len(ep) - length + 1] == ep[length - 1 :]).astype(np.int64)

    def window_batch(self, starts: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
        """Windows of ``length`` consecutive samples from each of ``starts`` (indices from
        :meth:`window_starts`): {"obs": (B, L, D), "u_seq": (B, L, N, nu)} float32 (CPU)."""
        idx = torch.as_tensor(starts)[:, None] + torch.arange(length)
        return {"obs": self._obs_t[idx], "u_seq": self._u_t[idx]}

    def __len__(self) -> int:
        return len(self.obs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch(i)

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return int(self.obs.shape[1])

    @property
    def horizon(self) -> int:
        """Horizon N of the stored sequences."""
        return int(self.u_seq.shape[1])

    def normalization_stats(self, min_std: float = 1e-6) -> dict[str, dict[str, np.ndarray]]:
        """Per-element statistics (float64) over the samples of the train split.

        Returns {"obs": {...}, "u_seq": {...}}, each with "mean", "std", "min", "max" of the
        item's shape ((obs_dim,) and (N, nu)). ``std`` is floored at ``min_std`` (constant
        entries, e.g. the obstacle of the obstacle env, would otherwise divide by zero)."""
        train = self if self.split == "train" else self._train_twin()
        if len(train) == 0:
            raise ValueError(f"no training samples in {self.path}")
        return {
            name: _stats(arr.astype(np.float64), min_std)
            for name, arr in (("obs", train.obs), ("u_seq", train.u_seq))
        }

    def _train_twin(self) -> DemonstrationDataset:
        return DemonstrationDataset(
            self.path,
            "train",
            self.val_fraction,
            self.seed,
            test_fraction=self.test_fraction,
            action_horizon=self.action_horizon,
            action_lead=self.action_lead,
        )


def _stats(arr: np.ndarray, min_std: float) -> dict[str, np.ndarray]:
    return {
        "mean": arr.mean(axis=0),
        "std": np.maximum(arr.std(axis=0), min_std),
        "min": arr.min(axis=0),
        "max": arr.max(axis=0),
    }
