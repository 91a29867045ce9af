"""File helpers shared by the loss networks and the evaluation suite."""

import hashlib


def sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes: recorded beside every weights file a run or a metric used."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()
