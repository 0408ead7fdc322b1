"""What the project's TFDS builders print while they build: nothing is downloaded."""

from __future__ import annotations


class BuiltLocally:
  """Mixin for a ``tfds.core.DatasetBuilder`` that reads local files only.

  TFDS prints "Downloading and preparing dataset Unknown size ..." before a build and
  "... downloaded and prepared to ..." after it (to stdout, not through logging), which
  reads as a download to someone told that nothing is downloaded. These say what happens.
  """

  def _log_download_bytes(self) -> None:
    print(
      f"Building {self.info.full_name} into {self.data_dir} from local files "
      "(once: later runs reuse it)...",
      flush=True,
    )

  def _log_download_done(self) -> None:
    print(f"Built {self.info.full_name} in {self.data_dir}.", flush=True)
