"""The simulated systems mounted beside the card center, and their profiles.

Each entry names a module with `mount(profile: str, settings: SimSettings) ->
overload.Mount`; its pages are served under the mount's prefix, its side
endpoints under /__sim/<name>/.
"""

from schoolsim.profiles import SimSettings, profile

# name -> module
MOUNTED: dict[str, str] = {"academic": "schoolsim.academic.app"}
MOUNTED |= {n: f"schoolsim.library.{n}" for n in ("opac", "ilas", "covers")}
MOUNTED["wechat"] = "schoolsim.wechat.api"


def mounted_profile(system: str, name: str) -> SimSettings:
    """A system's settings for a named profile (the card center's, unless a system has
    its own calibration)."""
    return profile(name)
