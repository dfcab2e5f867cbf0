"""PyAV (FFmpeg) decoding by plan: index by demuxing, seek to keyframes, skip what is not needed.

Opening probes the streams without decoding a frame; the index comes from packet headers
(timestamps, keyframe flags). Reading seeks to the keyframe before each run and decodes
forward; packets of frames the plan does not return are decoded only if other frames refer
to them (FFmpeg's `skip_frame = NONREF`). Every decoded frame is identified by its timestamp,
so a seek that lands late or a packet that decodes to nothing cannot shift a frame: the
source then counts by decoding and resamples (the record says why).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import av
import numpy as np

from fan_edge.data.sampling import segment_indices
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video.plan import DECODE_THREADS, Plan, StreamIndex, make_plan
from fan_edge.runtime.video.source import VideoSource, resized, too_short, upright

# Options for the streams found on open: decode nothing while probing them (a keyframe of
# 1080p costs ~10 ms). A list longer than any file's stream count; extra entries are unused.
_PROBE_WITHOUT_DECODING = [{"skip_frame": "all"}] * 64
# Decoders that honour `skip_frame = NONREF` packet by packet (others decode every packet:
# dav1d, for one, would drop AV1 frames that later packets show).
SKIP_NONREF = {"h264", "hevc"}
# Slice threading: frame threading delays every frame by the thread count and must refill
# after each seek; on the project's 2-core machine it was slower for every plan measured
# (8 of 300 frames, 720p: 148 vs 201 ms with keyframes 30 apart, 134 vs 201 with 250).
THREAD_TYPE = "SLICE"


class _PlanBroken(Exception):
    """The index disagreed with what the decoder produced."""


class _Stopped(_PlanBroken):
    """Another thread's decoder found the index wrong."""


class PyAVSource(VideoSource):
    name = "pyav"

    def _open(self) -> None:
        self._container = self._open_container(probe=False)
        stream = self._stream(self._container)
        pts, keys, sizes, why, discarded = [], [], [], "", 0
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:  # the flush packet at the end of the stream
                    continue
                if packet.is_discard:  # decoded for reference, never shown (mp4 edit lists)
                    discarded += 1
                    continue
                if packet.is_corrupt:
                    why = why or "a corrupt packet"
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
                sizes.append(packet.size)
        except av.error.FFmpegError as e:
            why = f"demuxing stopped early ({e.strerror})"
        if not pts:
            self.close()
            raise FanEdgeError(
                f"{self.path} has no decodable frames: is the file empty or truncated?"
            )
        if any(p is None for p in pts):
            why = why or "packets without timestamps"
        elif len(set(pts)) < len(pts):
            why = why or "repeated timestamps"
        promised = len(stream.index_entries)  # mp4, avi: one per frame; mkv: keyframes only
        if promised > len(pts) + discarded:
            why = why or f"truncated: {len(pts)} of the {promised} frames its index lists"
        cc = stream.codec_context
        if why:
            self.index = self._count_by_decoding(why)
            return
        order = np.argsort(pts, kind="stable")
        self._pts = np.asarray(pts, np.int64)[order]  # presentation index -> timestamp
        self._position = {int(p): i for i, p in enumerate(self._pts)}
        keyframes = np.union1d([0], np.flatnonzero(np.asarray(keys)[order]))
        self.index = StreamIndex(
            len(pts),
            tuple(int(k) for k in keyframes),
            cc.width,
            cc.height,
            cc.codec.canonical_name,
            sizes=tuple(int(x) for x in np.asarray(sizes)[order]),
        )

    def _open_container(self, probe: bool):
        try:
            try:
                container = av.open(
                    self.path, stream_options=None if probe else _PROBE_WITHOUT_DECODING
                )
            except ValueError:  # a format that finds its streams only by probing (MPEG-PS)
                container = av.open(self.path)
        except av.error.FileNotFoundError:
            raise FanEdgeError(f"no such video file: {self.path}") from None
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            msg = getattr(e, "strerror", None) or type(e).__name__
            raise FanEdgeError(
                f"cannot decode {self.path}: not a video FFmpeg can read ({msg})"
            ) from None
        videos = [
            s
            for s in container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ]  # not cover art
        if not videos:
            container.close()
            raise FanEdgeError(f"cannot decode {self.path}: it has no video stream")
        if videos[0].codec_context is None:
            container.close()
            raise FanEdgeError(
                f"cannot decode {self.path}: this FFmpeg has no decoder for its "
                "video codec (try --decoder opencv)"
            )
        self._stream_index = videos[0].index
        return container

    def _stream(self, container):
        return container.streams[self._stream_index]

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None

    # -- reading -------------------------------------------------------------------------

    def _read(
        self, plan: Plan, short_side: int | None, resample: bool
    ) -> tuple[np.ndarray, tuple, int, str]:
        if not self.index.trusted:
            frames, decoded = self._read_in_order(plan, short_side)
            return frames, plan.indices, decoded, self.index.untrusted_why
        got: dict[int, np.ndarray] = {}
        groups = plan.split(DECODE_THREADS)
        try:
            if len(groups) == 1:
                decoded = self._decode_runs(self._container, groups[0], plan, short_side, got)
            else:
                decoded = self._decode_in_parallel(groups, plan, short_side, got)
        except _PlanBroken as e:
            self.index = self._count_by_decoding(str(e))
            n = self.index.frames
            indices = segment_indices(n, len(plan.indices)) if resample else plan.indices
            if max(indices) >= n:
                raise FanEdgeError(
                    f"{self.path}: only {n} frames decodable, needed frame {max(indices)}"
                ) from None
            plan = make_plan(self.index, indices)
            frames, decoded = self._read_in_order(plan, short_side)
            return frames, plan.indices, decoded, str(e)
        self.index = replace(self.index, rotation=self._rotation)
        return np.stack([got[i] for i in plan.indices]), plan.indices, decoded, ""

    def _decode_in_parallel(self, groups, plan: Plan, short_side, got: dict) -> int:
        """One container and decoder per group of runs, in threads (FFmpeg drops the GIL).
        The first group to find the index wrong stops the others."""
        extra, stop = [], threading.Event()
        try:
            for _ in groups[1:]:
                extra.append(self._open_container(probe=False))
            with ThreadPoolExecutor(len(groups)) as pool:
                pairs = zip([self._container, *extra], groups, strict=True)
                jobs = [
                    pool.submit(self._decode_runs, c, g, plan, short_side, got, stop)
                    for c, g in pairs
                ]
                errors = [e for e in (job.exception() for job in jobs) if e is not None]
            if errors:  # the cause, not a decoder that was stopped because of it
                raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
            return sum(job.result() for job in jobs)
        finally:
            for c in extra:
                c.close()

    def _decode_runs(
        self,
        container,
        runs,
        plan: Plan,
        short_side,
        got: dict,
        stop: threading.Event | None = None,
    ) -> int:
        stream = self._stream(container)
        if not stream.codec_context.is_open:
            stream.thread_type = THREAD_TYPE
        wanted, decoded = set(plan.indices), 0
        try:
            for first, last in runs:
                decoded += self._decode_run(container, first, last, wanted, short_side, got, stop)
        except _PlanBroken:
            if stop is not None:
                stop.set()
            raise
        return decoded

    def _decode_run(
        self,
        container,
        first: int,
        last: int,
        wanted: set,
        short_side,
        got: dict,
        stop: threading.Event | None,
    ) -> int:
        """Seek to the keyframe at `first`, decode to `last`; keep the wanted frames."""
        stream = self._stream(container)
        cc = stream.codec_context
        todo = sorted(i for i in wanted if first <= i <= last)
        todo_pts = {int(self._pts[i]) for i in todo}
        skip = "NONREF" if self.index.codec in SKIP_NONREF else "DEFAULT"
        decoded, landed = 0, False
        try:
            container.seek(int(self._pts[first]), stream=stream)  # the keyframe at or before
            for packet in container.demux(stream):
                if stop is not None and stop.is_set():
                    raise _Stopped("stopped: another decoder found the index wrong")
                if not landed and packet.size:
                    if not packet.is_keyframe:
                        raise _PlanBroken("a seek did not land on a keyframe")
                    landed = True
                cc.skip_frame = skip if packet.pts not in todo_pts and packet.size else "DEFAULT"
                for frame in cc.decode(packet):
                    decoded += 1
                    i = self._position.get(frame.pts)
                    if i is None:
                        raise _PlanBroken("a decoded frame has a timestamp the index lacks")
                    if i > todo[0]:
                        raise _PlanBroken(f"frame {todo[0]} did not decode where the index put it")
                    if i == todo[0]:
                        got[i] = self._convert(frame, short_side)
                        self._rotation = int(frame.rotation)
                        todo.pop(0)
                        if not todo:
                            return decoded
        except av.error.FFmpegError as e:
            raise _PlanBroken(f"decoding failed ({e.strerror})") from None
        finally:
            cc.skip_frame = "DEFAULT"
        raise _PlanBroken(f"frame {todo[0]} never decoded")

    def _count_by_decoding(self, why: str) -> StreamIndex:
        """The slow, safe index: decode every frame once and count the ones that decode."""
        self.close()
        self._container = self._open_container(probe=True)
        stream = self._stream(self._container)
        stream.thread_type = THREAD_TYPE
        n, rotation = 0, 0
        try:
            for frame in self._container.decode(stream):
                rotation = rotation if n else int(frame.rotation)
                n += 1
        except av.error.FFmpegError:
            pass  # the frames before the damage are the clip
        if n < 2:
            self.close()
            raise too_short(self.path, n)
        cc = stream.codec_context
        return StreamIndex(
            n,
            (0,),
            cc.width,
            cc.height,
            cc.codec.canonical_name,
            rotation,
            trusted=False,
            untrusted_why=why,
        )

    def _read_in_order(self, plan: Plan, short_side) -> tuple[np.ndarray, int]:
        """One pass from the start, frames numbered by decoding order of output."""
        self.close()
        self._container = self._open_container(probe=True)
        stream = self._stream(self._container)
        stream.thread_type = THREAD_TYPE
        wanted, got, n = set(plan.indices), {}, 0
        try:
            for frame in self._container.decode(stream):
                if n in wanted:
                    got[n] = self._convert(frame, short_side)
                n += 1
                if n > max(wanted):
                    break
        except av.error.FFmpegError:
            pass
        missing = wanted - got.keys()
        if missing:
            raise FanEdgeError(
                f"{self.path}: only {n} frames decodable, needed frame {max(missing)}"
            )
        return np.stack([got[i] for i in plan.indices]), n

    def _convert(self, frame, short_side: int | None) -> np.ndarray:
        """RGB, upright, resized as the preprocessing contract resizes (so the result is the
        same as resizing the full frame later; swscale's own scaler is faster but differs)."""
        try:
            rgb = frame.to_ndarray(format="rgb24")
        except (ValueError, av.error.FFmpegError) as e:
            raise FanEdgeError(
                f"{self.path}: cannot convert its {frame.format.name} frames to RGB ({e})"
            ) from None
        return resized(upright(rgb, int(frame.rotation)), short_side)
