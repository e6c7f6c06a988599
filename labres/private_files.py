"""The embedded defaults' files are labres's user's alone: var/ and its folders 0700, the SQLite
database (sessions, token hashes, feed secrets) and the mail files 0600, whatever the umask.

Folders and files made before this was so are narrowed when labres starts.
"""
import os

from django.core.mail.backends.filebased import EmailBackend


def private_folder(path):
    """Make `path` (and missing parents) with mode 0700; narrow it to 0700 if it exists."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except PermissionError:  # a folder of another user's (LABRES_VAR_DIR=/srv/shared): theirs to set
        pass


def private_file(path):
    """Make `path` an (empty, if new) file with mode 0600; narrow it to 0600 if it exists."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class FileEmailBackend(EmailBackend):
    """Django's file backend (var/mail): the folder 0700, each message file 0600."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        private_folder(self.file_path)

    def open(self):
        if self.stream is None:
            descriptor = os.open(self._get_filename(), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            self.stream = os.fdopen(descriptor, "ab")
            return True
        return False
