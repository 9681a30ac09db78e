"""The features of one video's decoded audio and frames (`video_features`, the per-video, cacheable part).

The audio `media.decode` returns (16 kHz mono) is described frame by frame at AUDIO_RATE frames per
second, by one of two backends:

- `opensmile` (default): the 25 eGeMAPS v02 low-level descriptors (loudness, spectral slopes
  and flux, MFCC 1-4, F0 in semitones, jitter, shimmer, HNR, formants) at openSMILE's 10 ms
  hop, averaged over each 40 ms frame. The wheel ships openSMILE's compiled library.
- `librosa`: 20 MFCCs, pYIN F0 (0 when unvoiced), voiced flag and probability, RMS, spectral
  centroid, bandwidth, roll-off, flatness and zero-crossing rate (29 dims) at a 40 ms hop.

Vision samples frames at `fps` and describes the largest face OpenCV's Haar cascade finds
(the cascades ship inside opencv-python-headless; no download): presence, box, brightness
and contrast, eyes found, smile found and its width, and an 8x8 contrast-normalised
thumbnail of the face (74 dims). A frame without a face is a zero row and is counted.

Every library here is imported inside the functions that use it: the core install does not
have them (they are the `[extract]` extra).
"""
from __future__ import annotations

import numpy as np

from .media import AUDIO_RATE, MAX_CLIP_SECONDS, SAMPLE_RATE, THUMB, VISION_DIM, VideoError, decode

# -- audio -------------------------------------------------------------------------------------

_SMILE = None     # one openSMILE instance per process (building it costs ~0.3 s)


def audio_features(samples: np.ndarray, backend: str) -> np.ndarray:
    """(frames, AUDIO_DIMS[backend]) float32 at AUDIO_RATE frames per second."""
    if backend == "opensmile":
        global _SMILE
        import opensmile      # [extract] extra
        if _SMILE is None:
            _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        lld = _SMILE.process_signal(samples, SAMPLE_RATE).to_numpy(np.float32)     # 10 ms hop
        group = 100 // AUDIO_RATE
        n = len(lld) // group
        if n == 0:
            raise VideoError("audio too short for one eGeMAPS frame")
        return lld[:n * group].reshape(n, group, -1).mean(axis=1)
    import librosa            # [extract] extra
    hop, n_fft = SAMPLE_RATE // AUDIO_RATE, 1024
    spectrum = np.abs(librosa.stft(samples, n_fft=n_fft, hop_length=hop)) ** 2
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum, sr=SAMPLE_RATE)),
                                n_mfcc=20)
    f0, voiced, voiced_prob = librosa.pyin(samples, fmin=65.0, fmax=600.0, sr=SAMPLE_RATE, frame_length=2048,
                                           hop_length=hop)
    columns = [mfcc, np.nan_to_num(f0)[None], voiced[None], np.nan_to_num(voiced_prob)[None],
               librosa.feature.rms(S=np.sqrt(spectrum), frame_length=n_fft, hop_length=hop),
               librosa.feature.spectral_centroid(S=np.sqrt(spectrum), sr=SAMPLE_RATE),
               librosa.feature.spectral_bandwidth(S=np.sqrt(spectrum), sr=SAMPLE_RATE),
               librosa.feature.spectral_rolloff(S=np.sqrt(spectrum), sr=SAMPLE_RATE) / SAMPLE_RATE,
               librosa.feature.spectral_flatness(S=np.sqrt(spectrum)),
               librosa.feature.zero_crossing_rate(samples, frame_length=n_fft, hop_length=hop)]
    n = min(c.shape[1] for c in columns)
    features = np.concatenate([c[:, :n] for c in columns]).T.astype(np.float32)
    # Hz-valued columns (F0, centroid, bandwidth) in kHz, so no column dwarfs the MFCCs.
    features[:, [20, 24, 25]] /= 1000.0
    return features


# -- vision ------------------------------------------------------------------------------------

class FaceFeatures:
    """Per-frame face features from OpenCV's bundled Haar cascades (see the module docstring)."""

    def __init__(self):
        import cv2            # [extract] extra
        cv2.setNumThreads(1)  # --jobs runs one process per core; OpenCV's own threads would fight them
        root = cv2.data.haarcascades
        self.cv2 = cv2
        self.face = cv2.CascadeClassifier(root + "haarcascade_frontalface_default.xml")
        self.eye = cv2.CascadeClassifier(root + "haarcascade_eye.xml")
        self.smile = cv2.CascadeClassifier(root + "haarcascade_smile.xml")
        if self.face.empty() or self.eye.empty() or self.smile.empty():
            raise RuntimeError(f"OpenCV's Haar cascades are missing from {root}: reinstall the [extract] extra")

    def __call__(self, small: np.ndarray) -> np.ndarray:
        """Features of one gray frame, at most DETECT_WIDTH wide."""
        cv2 = self.cv2
        side = min(small.shape)
        # A face smaller than a sixth of the frame is no talking head; 1.2 between scales halves
        # the cost of 1.1 and found the same faces in our checks.
        faces = self.face.detectMultiScale(small, scaleFactor=1.2, minNeighbors=5,
                                           minSize=(max(20, side // 6),) * 2)
        row = np.zeros(VISION_DIM, np.float32)
        if len(faces) == 0:
            return row
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        crop = small[y:y + h, x:x + w]
        upper, lower = crop[: h // 2], crop[h // 2:]
        eyes = self.eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=5)
        smiles = self.smile.detectMultiScale(lower, scaleFactor=1.5, minNeighbors=15)
        smile_width = max((s[2] for s in smiles), default=0) / w
        sw, sh = small.shape[1], small.shape[0]
        thumb = cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        mean, std = float(crop.mean()) / 255.0, float(crop.std()) / 255.0
        row[:10] = [1.0, (x + w / 2) / sw, (y + h / 2) / sh, w / sw, h / sh, mean, std,
                    min(len(eyes), 2) / 2.0, float(len(smiles) > 0), smile_width]
        row[10:] = ((thumb - thumb.mean()) / (thumb.std() + 1e-3)).reshape(-1)
        return row


_FACES = None     # one set of cascades per process


def video_features(path, backend: str, fps: float, max_seconds: float = MAX_CLIP_SECONDS,
                   rows: tuple | None = None, progress=None) -> dict:
    """Everything extracted from one video: audio (La, Da) and vision (Lv, Dv) features, at most `rows`
    (audio, vision) of each (the padded lengths: rows past them are never stored), and the clip's length in
    seconds (see `decode`, which calls `progress` as it decodes)."""
    global _FACES
    if _FACES is None:
        _FACES = FaceFeatures()
    audio_rows, vision_rows = rows or (None, None)
    samples, vision, seconds = decode(path, fps, _FACES, max_seconds, max_rows=vision_rows, progress=progress)
    # Computed over the whole clip, then cut: pYIN's Viterbi pass (librosa) and openSMILE's pitch smoothing look
    # ahead, so the rows kept could change if the samples were cut first.
    audio = audio_features(samples, backend)[:audio_rows].copy()
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return {"audio": audio, "vision": vision, "seconds": np.float64(seconds)}
