"""Scripted pushing expert for Push-T (``PushT-v0``).

Push-T's block is quasi-static (pymunk damping 0: it moves only while pushed) and its
contacts are frictionless, so a push at a point c of the T's outline moves it along the
inward face normal d with the twist of an impulse there: translation J d, rotation
J (r x d) / I (mass 1, inertia I = 3000 px², r from the centre of gravity), where
J = delta / (1 + (r x d)² / I) for a push of depth delta [px] at the contact.

Every step the controller (re)plans greedily:

1. error e = (goal CoG - CoG [px], L * wrapped angle error [rad]) with L = :data:`ANGLE_LENGTH`;
2. for contact candidates sampled along the outline (:func:`contact_candidates`), the
   push depth that best reduces |e|² along that contact's twist, the reduction it buys and
   the time to get there (around the block when the straight way is blocked) and push;
3. it keeps the current contact unless another one is clearly faster (hysteresis), walks
   to the pre-contact point (outside the T by the agent's radius + a margin), then pushes
   by the planned depth (the PD-tracked agent stops where its target is).

Human-like variation per episode (``reset(seed)``, spread scaled by ``config.diversity``):
walking speed, approach margin, the angle weight L, a random pick among near-best contacts,
and small correlated noise on the commanded target (shrinking near the goal).

Geometry (paths around the T) uses shapely, which gym-pusht installs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Agent disc radius [px].
AGENT_RADIUS = 15.0
#: T block: centre of gravity in its body frame [px] and rotational inertia (mass 1) [px²].
COG_LOCAL = np.array([0.0, 45.0])
INERTIA = 3000.0
#: Goal pose (x, y [px] of the body origin, angle [rad]).
GOAL = np.array([256.0, 256.0, np.pi / 4])
#: Length converting angle error [rad] into px in the pushing cost.
ANGLE_LENGTH = 70.0
#: Radius around the CoG clear of the T for the agent [px] (the T reaches 77 px): the planner
#: estimates walks around the T along this circle.
ORBIT_RADIUS = 77.0 + AGENT_RADIUS + 12.0
#: Longest planned push per contact [px] and per step of 0.1 s [px].
MAX_PUSH = 40.0
PUSH_STEP = 12.0
#: Walking speed at diversity 0 [px per step of 0.1 s], and its spread at diversity 1.
WALK_SPEED = 28.0
WALK_SPEED_SPREAD = 8.0
#: Gap kept between the agent and the T while walking to a contact [px].
APPROACH_MARGIN = 6.0
#: Within this distance of the pre-contact point the push starts [px].
ARRIVE_TOLERANCE = 3.0
#: A new contact replaces the current one only when its rate is this many times higher.
SWITCH_FACTOR = 1.6
#: Contacts tried per step when the best ones cannot be reached.
MAX_TRIES = 5
#: Std of the commanded-target noise at diversity 1, far from the goal [px].
NOISE_STD = 2.0
#: Pose error [px] above which the noise has its full std.
NOISE_ERROR_SCALE = 48.0


def rotation(theta: float) -> np.ndarray:
    """(2, 2) rotation by ``theta`` [rad] (pymunk's convention)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def contact_candidates(spacing: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Points (K, 2) on the T's outline in its body frame [px] that the agent disc can touch
    alone (not near the inner corners, not at the outer corners), and their outward normals
    (K, 2)."""
    faces = [  # (start, end, outward normal)
        ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),  # bar, far edge
        ((-60.0, 30.0), (-30.0, 30.0), (0.0, 1.0)),  # bar, near edge left of the stem
        ((30.0, 30.0), (60.0, 30.0), (0.0, 1.0)),  # bar, near edge right of the stem
        ((-60.0, 0.0), (-60.0, 30.0), (-1.0, 0.0)),  # bar ends
        ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),
        ((-15.0, 45.0), (-15.0, 120.0), (-1.0, 0.0)),  # stem sides
        ((15.0, 45.0), (15.0, 120.0), (1.0, 0.0)),
        ((-15.0, 120.0), (15.0, 120.0), (0.0, 1.0)),  # stem end
    ]
    points, normals = [], []
    for a, b, n in faces:
        a_, b_ = np.array(a), np.array(b)
        length = float(np.linalg.norm(b_ - a_))
        k = max(2, int(length // spacing) + 1)
        for s in np.linspace(3.0 / length, 1 - 3.0 / length, k):
            points.append(a_ + s * (b_ - a_))
            normals.append(np.array(n))
    return np.array(points), np.array(normals)


def wrap(angle: float | np.ndarray) -> Any:
    """Angle wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


#: Outline of the T in its body frame [px] (bar 120 x 30, stem 30 x 90).
T_OUTLINE = [(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)]


def _point(p: np.ndarray) -> Any:
    from shapely.geometry import Point

    return Point(float(p[0]), float(p[1]))


def _clear(a: np.ndarray, b: np.ndarray, obstacle: Any) -> bool:
    """The straight segment a -> b does not cross ``obstacle``'s interior."""
    from shapely.geometry import LineString

    seg = LineString([(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))])
    return bool(seg.intersection(obstacle).length < 1e-6)


def _away(p: np.ndarray, obstacle: Any) -> np.ndarray:
    """Unit vector from ``obstacle``'s nearest boundary point to ``p``."""
    from shapely.ops import nearest_points

    q = nearest_points(obstacle.exterior, _point(p))[0]
    v = p - np.array([q.x, q.y])
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else np.array([1.0, 0.0])


def _hull_waypoint(a: np.ndarray, b: np.ndarray, hull: Any) -> np.ndarray | None:
    """First vertex of the shortest path a -> b around the convex polygon ``hull`` (a and b
    outside it) that stays in the arena; None when there is none."""
    verts = np.array(hull.exterior.coords)[:-1]
    inner = hull.buffer(-4.0)  # grazing the outline is fine
    n = len(verts)
    ok = np.all((verts > 0.0) & (verts < 512.0), axis=1)
    # a vertex the agent stands on is no waypoint: the path goes on from there
    seen_a = [
        i
        for i in range(n)
        if ok[i] and np.linalg.norm(verts[i] - a) > 3.0 and _clear(a, verts[i], inner)
    ]
    seen_b = [j for j in range(n) if ok[j] and _clear(verts[j], b, inner)]
    edge = np.linalg.norm(np.roll(verts, -1, axis=0) - verts, axis=1)
    best, first = np.inf, None
    for i in seen_a:
        for j in seen_b:
            for step in (1, -1):  # around either way, through arena vertices only
                k, along = i, 0.0
                while k != j and ok[k]:
                    along += edge[k] if step == 1 else edge[(k - 1) % n]
                    k = (k + step) % n
                if k != j:
                    continue
                length = np.linalg.norm(verts[i] - a) + along + np.linalg.norm(b - verts[j])
                if length < best:
                    best, first = length, verts[i]
    return first


def _segment_hits_circle(a: np.ndarray, b: np.ndarray, c: np.ndarray, r: float) -> bool:
    ab = b - a
    t = np.clip(np.dot(c - a, ab) / max(np.dot(ab, ab), 1e-9), 0.0, 1.0)
    return bool(np.linalg.norm(a + t * ab - c) < r)


class PushTScripted:
    """Greedy pushing controller (module docstring). ``act(obs)``: obs (5,) [agent x, y,
    block x, y, angle] -> action (2,) target position of the agent [px]."""

    obs_dim = 5
    action_dim = 2

    def __init__(self, config: Any = None):
        self.config = config
        self.diversity = float(getattr(config, "diversity", 1.0))
        self._local_points, self._local_normals = contact_candidates()
        self.reset(getattr(config, "seed", None))

    def reset(self, seed: int | None = None) -> None:
        """Draw this episode's speed, margin, angle weight, contact choice and noise."""
        rng = np.random.default_rng(seed)
        d = min(self.diversity, 1.0)
        self._rng = rng
        self.speed = WALK_SPEED + WALK_SPEED_SPREAD * d * rng.uniform(-1.0, 1.0)
        self.margin = APPROACH_MARGIN * (1.0 + 0.5 * d * rng.uniform(-1.0, 1.0))
        self.angle_length = ANGLE_LENGTH * (1.0 + 0.25 * d * rng.uniform(-1.0, 1.0))
        self.pick_temperature = 0.15 * d  # relative rate spread among candidates picked
        self.noise_std = NOISE_STD * self.diversity
        self._noise = np.zeros(2)
        self._contact: int | None = None
        self._pushing = False
        self._prev_agent: np.ndarray | None = None

    # ------------------------------------------------------------------ geometry
    def _world(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contact points (K, 2), outward normals (K, 2) in the world, CoG (2,)."""
        R = rotation(block[2])
        points = block[:2] + self._local_points @ R.T
        normals = self._local_normals @ R.T
        return points, normals, block[:2] + R @ COG_LOCAL

    def _error(self, block: np.ndarray) -> np.ndarray:
        """(3,) goal minus current: CoG [px] and L * angle [px]."""
        goal_cog = GOAL[:2] + rotation(GOAL[2]) @ COG_LOCAL
        cog = block[:2] + rotation(block[2]) @ COG_LOCAL
        return np.array([*(goal_cog - cog), self.angle_length * wrap(GOAL[2] - block[2])])

    def _twists(self, points: np.ndarray, normals: np.ndarray, cog: np.ndarray) -> np.ndarray:
        """(K, 3) block motion per px of push at each contact: (dx, dy, L dtheta)."""
        d = -normals
        r = points - cog
        cross = r[:, 0] * d[:, 1] - r[:, 1] * d[:, 0]
        j = 1.0 / (1.0 + cross**2 / INERTIA)
        return np.column_stack([j * d[:, 0], j * d[:, 1], self.angle_length * j * cross / INERTIA])

    def _travel(self, agent: np.ndarray, target: np.ndarray, cog: np.ndarray) -> float:
        """Path length [px] from ``agent`` to ``target`` around the T (orbit when blocked)."""
        if not _segment_hits_circle(agent, target, cog, ORBIT_RADIUS - 20.0):
            return float(np.linalg.norm(target - agent))
        a, b = agent - cog, target - cog
        arc = abs(wrap(np.arctan2(b[1], b[0]) - np.arctan2(a[1], a[0]))) * ORBIT_RADIUS
        return float(arc + abs(np.linalg.norm(a) - ORBIT_RADIUS) + ORBIT_RADIUS)

    # ------------------------------------------------------------------ planning
    def _plan(self, agent: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per contact: (rate of cost reduction [px² per step], planned push depth [px])."""
        points, normals, cog = self._world(block)
        e = self._error(block)
        t = self._twists(points, normals, cog)
        along = t @ e
        norm2 = np.einsum("ij,ij->i", t, t)
        depth = np.clip(along / norm2, 0.0, MAX_PUSH)
        reduction = 2 * depth * along - depth**2 * norm2
        pre = points + normals * (AGENT_RADIUS + self.margin)
        inside = np.all((pre > 2.0) & (pre < 510.0), axis=1)
        travel = np.array([self._travel(agent, p, cog) for p in pre])
        steps = travel / self.speed + depth / PUSH_STEP + 2.0
        rate = np.where(inside & (depth > 0.5), reduction / steps, 0.0)
        return rate, depth

    def _choose(self, rate: np.ndarray) -> int | None:
        best = float(rate.max())
        if best <= 0:
            return None
        current = self._contact
        if current is not None and rate[current] * SWITCH_FACTOR >= best:
            return current
        near = np.flatnonzero(rate >= best * (1.0 - self.pick_temperature))
        return int(self._rng.choice(near))

    # ------------------------------------------------------------------ control
    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        if obs.shape != (self.obs_dim,) or not np.all(np.isfinite(obs)):
            raise ValueError(f"obs must be ({self.obs_dim},) finite numbers, got {obs!r}")
        agent, block = obs[:2], obs[2:5]
        rate, depth = self._plan(agent, block)
        points, normals, _ = self._world(block)
        for _ in range(MAX_TRIES):
            choice = self._choose(rate)
            if choice != self._contact:
                self._pushing = False
            self._contact = choice
            if choice is None:
                return agent.copy()
            target = self._target(agent, block, points[choice], normals[choice], depth[choice])
            if target is not None:
                break
            rate[choice] = 0.0  # no way there: next best contact
        else:
            return agent.copy()
        error = float(np.linalg.norm(self._error(block)))
        return np.clip(target + self._next_noise(error), 0.0, 512.0)

    def _walk(self, agent: np.ndarray, goal: np.ndarray, block: np.ndarray) -> np.ndarray | None:
        """Next target toward ``goal`` (the pre-contact point): straight when the way is
        clear of the T, else around the T's (inflated) convex hull; None when the arena
        walls close both ways around."""
        t, body, outline = self._shapes(block)
        if _clear(agent, goal, body):
            return self._toward(agent, goal)
        if outline.contains(_point(agent)):  # just pushed elsewhere: back away first
            return self._toward(agent, agent + 3.0 * self.speed * _away(agent, t))
        normal = self._normal_world(block)
        stage = goal.copy()
        for _ in range(20):  # back out of the hull along the contact normal
            if not outline.contains(_point(stage)):
                break
            stage = stage + 8.0 * normal
        if _clear(agent, stage, outline):
            return self._toward(agent, stage)
        via = _hull_waypoint(agent, stage, outline)
        return None if via is None else self._toward(agent, via)

    def _toward(self, agent: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Target making the PD-tracked agent walk toward ``goal`` at about ``speed``."""
        delta = goal - agent
        dist = float(np.linalg.norm(delta))
        lead = 2.0 * self.speed  # the PD settles at half the target distance per step
        return goal if dist <= lead else agent + delta * (lead / dist)

    def _shapes(self, block: np.ndarray) -> tuple[Any, Any, Any]:
        """(the T, the T inflated by the agent radius, its convex hull inflated by the radius
        and the margin), shapely polygons in the world."""
        from shapely import affinity
        from shapely.geometry import Polygon

        t = Polygon(T_OUTLINE)
        t = affinity.rotate(t, block[2], origin=(0, 0), use_radians=True)
        t = affinity.translate(t, block[0], block[1])
        body = t.buffer(AGENT_RADIUS + 1.0)
        hull = t.convex_hull.buffer(AGENT_RADIUS + self.margin, join_style=2, mitre_limit=1.5)
        return t, body, hull

    def _normal_world(self, block: np.ndarray) -> np.ndarray:
        assert self._contact is not None
        return rotation(block[2]) @ self._local_normals[self._contact]

    def _target(
        self, agent: np.ndarray, block: np.ndarray, c: np.ndarray, n: np.ndarray, depth: float
    ) -> np.ndarray | None:
        """Commanded position: walk to the pre-contact point of contact (c, n), then push
        by ``depth`` [px] (at most :data:`PUSH_STEP` ahead); None when unreachable."""
        pre = c + n * (AGENT_RADIUS + self.margin)
        if not self._pushing and np.linalg.norm(agent - pre) < ARRIVE_TOLERANCE + self.margin:
            self._pushing = True
        if self._pushing:
            return c + n * (AGENT_RADIUS - min(depth, PUSH_STEP))
        return self._walk(agent, pre, block)

    def _next_noise(self, error: float) -> np.ndarray:
        """Correlated target noise [px], its std shrinking with the pose ``error`` [px]
        (a quarter of it within 12 px of the goal pose)."""
        std = self.noise_std * float(np.clip(error / NOISE_ERROR_SCALE, 0.25, 1.0))
        self._noise = 0.7 * self._noise + std * 0.71 * self._rng.standard_normal(2)
        return self._noise
