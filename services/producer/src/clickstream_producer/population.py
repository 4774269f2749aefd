"""The simulated visitors: each user keeps one device, user agent, IP address and location.

Faker is called only here, at start-up, so the hot path never pays for it; it is
seeded from the generator's RNG so a seed fixes the population.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from ipaddress import IPv4Address
from itertools import accumulate
from typing import Final

from faker import Faker

from clickstream_schema import DeviceType, Geo, GeoPoint

# Traffic split of a typical retail site in the 2020s.
_DEVICE_WEIGHTS: Final = (
    (DeviceType.MOBILE, 0.56),
    (DeviceType.DESKTOP, 0.37),
    (DeviceType.TABLET, 0.07),
)

_VIEWPORTS: Final[dict[DeviceType, tuple[str, ...]]] = {
    DeviceType.DESKTOP: ("1920x1080", "1366x768", "1536x864", "1440x900", "2560x1440", "1280x720"),
    DeviceType.MOBILE: ("390x844", "393x873", "412x915", "375x667", "360x800", "414x896"),
    DeviceType.TABLET: ("768x1024", "810x1080", "820x1180", "800x1280", "1024x1366"),
}

_ANDROID_PHONES: Final = ("SM-S911B", "Pixel 8", "SM-A546B", "Pixel 7a", "moto g54 5G", "2201116SG")
_ANDROID_TABLETS: Final = ("SM-X710", "SM-X200", "Lenovo TB-J616F")


_WEBKIT: Final = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_BLINK: Final = "AppleWebKit/537.36 (KHTML, like Gecko)"


def _versions(rng: random.Random) -> tuple[str, str, str]:
    """(Chrome version, iOS version with underscores, Safari version) of this decade."""
    chrome = f"{rng.randint(118, 131)}.0.{rng.randint(5000, 6800)}.{rng.randint(40, 200)}"
    major, minor = rng.randint(16, 18), rng.randint(0, 6)
    return chrome, f"{major}_{minor}", f"{major}.{minor}"


def _handheld_user_agent(rng: random.Random, device: DeviceType) -> str:
    chrome, ios, safari = _versions(rng)
    apple = rng.random() < (0.5 if device is DeviceType.MOBILE else 0.6)
    if apple:
        platform = "iPhone; CPU iPhone OS" if device is DeviceType.MOBILE else "iPad; CPU OS"
        return (
            f"Mozilla/5.0 ({platform} {ios} like Mac OS X) {_WEBKIT} "
            f"Version/{safari} Mobile/15E148 Safari/604.1"
        )
    if device is DeviceType.MOBILE:
        model, suffix = rng.choice(_ANDROID_PHONES), "Mobile Safari/537.36"
    else:
        model, suffix = rng.choice(_ANDROID_TABLETS), "Safari/537.36"
    android = rng.randint(12, 15)
    return f"Mozilla/5.0 (Linux; Android {android}; {model}) {_BLINK} Chrome/{chrome} {suffix}"


def _desktop_user_agent(rng: random.Random) -> str:
    chrome, _, safari = _versions(rng)
    windows = "Windows NT 10.0; Win64; x64"
    pick = rng.random()
    if pick < 0.55:
        return f"Mozilla/5.0 ({windows}) {_BLINK} Chrome/{chrome} Safari/537.36"
    if pick < 0.7:
        return f"Mozilla/5.0 ({windows}) {_BLINK} Chrome/{chrome} Safari/537.36 Edg/{chrome}"
    if pick < 0.85:
        mac = "Macintosh; Intel Mac OS X 10_15_7"
        return f"Mozilla/5.0 ({mac}) {_WEBKIT} Version/{safari} Safari/605.1.15"
    firefox = rng.randint(115, 133)
    return f"Mozilla/5.0 ({windows}; rv:{firefox}.0) Gecko/20100101 Firefox/{firefox}.0"


def _user_agent(rng: random.Random, device: DeviceType) -> str:
    if device is DeviceType.DESKTOP:
        return _desktop_user_agent(rng)
    return _handheld_user_agent(rng, device)


#: First octets of which no address is global unicast (this network, 10/8, loopback,
#: multicast, reserved), and those where only some are: only these need the slow check.
_NEVER_GLOBAL: Final = frozenset({0, 10, 127, *range(224, 256)})
_SOMETIMES_GLOBAL: Final = frozenset({100, 169, 172, 192, 198, 203})


def _public_ip(rng: random.Random) -> IPv4Address:
    while True:
        bits = rng.getrandbits(32)
        first = bits >> 24
        if first in _NEVER_GLOBAL:
            continue
        address = IPv4Address(bits)
        # The same decision as the check alone, a lot faster for a big population.
        if first not in _SOMETIMES_GLOBAL or (address.is_global and not address.is_multicast):
            return address


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    device: DeviceType
    user_agent: str
    ip_address: IPv4Address
    viewport: str
    geo: Geo
    #: Has an account: only these users log in.
    registered: bool


class Population:
    """A fixed set of users, created once; sessions pick from it."""

    def __init__(self, rng: random.Random, size: int) -> None:
        if size < 1:
            raise ValueError("a population needs at least one user")
        fake = Faker()
        fake.seed_instance(rng.getrandbits(32))
        # A few thousand places are plenty of variety; faker is slow, so cap the calls.
        places = []
        for _ in range(min(size, 4096)):
            lat, lon, city, country, _tz = fake.location_on_land()
            places.append(Geo(country=country, city=city, location=GeoPoint(lat=lat, lon=lon)))
        devices = [device for device, _ in _DEVICE_WEIGHTS]
        device_cum = list(accumulate(weight for _, weight in _DEVICE_WEIGHTS))
        users: list[User] = []
        for _ in range(size):
            device = devices[bisect(device_cum, rng.random() * device_cum[-1])]
            users.append(
                User(
                    user_id=f"u-{rng.getrandbits(48):012x}",
                    device=device,
                    user_agent=_user_agent(rng, device),
                    ip_address=_public_ip(rng),
                    viewport=rng.choice(_VIEWPORTS[device]),
                    geo=rng.choice(places),
                    registered=rng.random() < 0.75,
                )
            )
        self.users: tuple[User, ...] = tuple(users)

    def __len__(self) -> int:
        return len(self.users)
