"""The specialty model: TF-IDF over the question's words, multinomial logistic regression.

Trained on the premises (`dari assist train`, and again by the app when enough new
consults have closed) from the deployment's own completed consults; until there are
`assist_min_real_consults` of them, from the synthetic seed questions shipped in
`data/seed.csv` as well (the cold start, which the page says). The trained model is kept
under the data directory (var/assist/), never in the repository.
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickle
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from server.assist.text import words
from server.clock import utcnow

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

# numpy, scipy and scikit-learn are imported where they are used, not at app start:
# the app and most tests never need them.

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED_PATH = DATA_DIR / "seed.csv"
HELDOUT_PATH = DATA_DIR / "heldout.csv"
# Bumped when the pickled layout or the words (text.py) change: an older file is retrained,
# never half-read or read with other words.
FORMAT = 3


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # the specialty's code
    lang: str = ""
    urgent: bool | None = None  # held-out set only: the clinicians' urgency label


@dataclass(frozen=True)
class Candidate:
    label: str
    confidence: float
    words: tuple[str, ...]


@dataclass
class TrainedModel:
    # Word unigrams explain a suggestion; character n-grams (within words) carry it over
    # to forms the training questions did not have (갑상선기능 / 갑상선, osteoporotic).
    vectorizer: TfidfVectorizer
    char_vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    labels: list[str]
    trained_at: datetime
    n_seed: int
    n_real: int
    source: str  # "seed" (cold start: seed questions, plus any real ones) | "deployment"
    version: str = ""
    sklearn_version: str = ""
    format: int = FORMAT


def read_examples(path: Path) -> list[Example]:
    """Rows of a shipped CSV: specialty, lang, question (and urgent in the held-out set)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Example(
            text=row["question"],
            label=row["specialty"],
            lang=row.get("lang", ""),
            urgent=(row["urgent"] == "1") if row.get("urgent") not in (None, "") else None,
        )
        for row in rows
    ]


def _joined(text: str) -> str:
    # Words never hold spaces, so the vectoriser splits them back with str.split.
    return " ".join(words(text))


def train(examples: Sequence[Example], *, n_seed: int, n_real: int, source: str) -> TrainedModel:
    """Fit the model; needs examples of at least two specialties."""
    import sklearn
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise ValueError("training needs questions of at least two specialties")
    vectorizer = TfidfVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True
    )
    char_vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    joined = [_joined(e.text) for e in examples]
    matrix = sparse.hstack(
        [vectorizer.fit_transform(joined), char_vectorizer.fit_transform(joined)]
    ).tocsr()
    classifier = LogisticRegression(C=1.0, max_iter=2000)
    classifier.fit(matrix, [e.label for e in examples])
    digest = hashlib.sha256()
    for example in examples:
        digest.update(f"{example.label}\x1f{example.text}\x1e".encode())
    return TrainedModel(
        vectorizer=vectorizer,
        char_vectorizer=char_vectorizer,
        classifier=classifier,
        labels=[str(c) for c in classifier.classes_],
        trained_at=utcnow(),
        n_seed=n_seed,
        n_real=n_real,
        source=source,
        version=digest.hexdigest()[:12],
        sklearn_version=sklearn.__version__,
    )


def predict(
    model: TrainedModel, text: str, *, k: int = 3, allowed: Iterable[str] | None = None
) -> list[Candidate]:
    """The k likeliest specialties (among `allowed` codes, if given), each with the words of
    the text that weighed most for it."""
    import numpy as np
    from scipy import sparse

    tokens = _joined(text)
    word_vector = model.vectorizer.transform([tokens]).tocsr()
    char_vector = model.char_vectorizer.transform([tokens])
    if word_vector.nnz == 0 and char_vector.nnz == 0:
        return []  # nothing known yet: no guess
    vector = sparse.hstack([word_vector, char_vector]).tocsr()
    probabilities = model.classifier.predict_proba(vector)[0]
    allowed_set = set(allowed) if allowed is not None else None
    order = [int(i) for i in np.argsort(-probabilities)]
    names = model.vectorizer.get_feature_names_out()
    coef = model.classifier.coef_
    row = word_vector  # the explanation names whole words: the first block of columns
    candidates: list[Candidate] = []
    for index in order:
        label = model.labels[index]
        if allowed_set is not None and label not in allowed_set:
            continue
        if len(model.labels) == 2:  # binary: one row of weights, for the second class
            weights = coef[0] if index == 1 else -coef[0]
        else:
            weights = coef[index]
        score: dict[str, float] = {}
        for column, value in zip(row.indices, row.data, strict=True):
            contribution = float(value * weights[column])
            if contribution <= 0:
                continue
            word = str(names[column])
            score[word] = score.get(word, 0.0) + contribution
        top = sorted(score, key=lambda w: -score[w])[:4]
        candidates.append(Candidate(label, float(probabilities[index]), tuple(top)))
        if len(candidates) == k:
            break
    return candidates


class ModelStore:
    """The trained model of this deployment: in memory, on disk under var/assist/.

    Every process reads the same file and reloads it when another process (or
    `dari assist train`) has written a newer one.
    """

    def __init__(self, var_dir: Path) -> None:
        self.path = var_dir / "assist" / "specialty-model.pickle"
        self._lock = threading.Lock()
        self._model: TrainedModel | None = None
        self._mtime: float | None = None

    def load(self) -> TrainedModel | None:
        """The stored model, or None if there is none (or it was written by another
        version of the code or of scikit-learn: it is then retrained)."""
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return self._model
            if self._model is not None and self._mtime == mtime:
                return self._model
            try:
                with self.path.open("rb") as handle:
                    # Our own file, written by save() below into the deployment's var/
                    # (mode 0600); never a file from elsewhere.
                    model = pickle.load(handle)  # noqa: S301
            except (OSError, pickle.UnpicklingError, AttributeError, EOFError, ImportError):
                return self._model
            import sklearn

            if (
                not isinstance(model, TrainedModel)
                or model.format != FORMAT
                or model.sklearn_version != sklearn.__version__
            ):
                return self._model
            self._model, self._mtime = model, mtime
            return model

    def save(self, model: TrainedModel) -> None:
        """Write atomically (a reader sees the old file or the new one, never half)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                pickle.dump(model, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        with self._lock:
            self._model = model
            self._mtime = self.path.stat().st_mtime


_stores: dict[Path, ModelStore] = {}
_stores_lock = threading.Lock()


def store_for(var_dir: Path) -> ModelStore:
    """One store per data directory and process."""
    with _stores_lock:
        if var_dir not in _stores:
            _stores[var_dir] = ModelStore(var_dir)
        return _stores[var_dir]
