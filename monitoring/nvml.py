"""Which NVML the sampler talks to: the real driver library (pynvml) or the fake one.

LABRES_NVML=fake lets a laptop or a demo show live-looking GPUs without any NVIDIA driver.
"""
import os

BACKENDS = ("real", "fake")


def load_backend(name=None):
    """The pynvml module for 'real' (the default), monitoring.fake_nvml for 'fake'; the name
    comes from LABRES_NVML when not given."""
    if name is None:
        name = os.environ.get("LABRES_NVML", "real")
    choice = name.strip().lower()
    if choice == "real":
        import pynvml

        return pynvml
    if choice == "fake":
        from monitoring import fake_nvml

        return fake_nvml
    raise ValueError(f"'{name}' is not an NVML backend; set LABRES_NVML to 'real' or 'fake'.")
