"""Where a task's data may be pinned: the values `data_region` takes, as a contract every edge checks.

A data region is a jurisdiction (an ISO 3166-1 alpha-2 country code, `uk` for the United Kingdom, or a
bloc: `eu`, `eea`, `apac`) or a cloud region of AWS, GCP or Azure, which resolves to its jurisdiction.
"""

from __future__ import annotations

# Region -> jurisdiction, per cloud. A region missing here resolves to unknown (and fails `problems`).
AWS: dict[str, str] = {
    "us-east-1": "us", "us-east-2": "us", "us-west-1": "us", "us-west-2": "us",
    "us-gov-east-1": "us", "us-gov-west-1": "us",
    "ca-central-1": "ca", "ca-west-1": "ca",
    "eu-west-1": "eu", "eu-west-3": "eu", "eu-central-1": "eu", "eu-central-2": "ch", "eu-north-1": "eu",
    "eu-south-1": "eu", "eu-south-2": "eu", "eu-west-2": "uk",
    "ap-northeast-1": "jp", "ap-northeast-3": "jp", "ap-northeast-2": "kr", "ap-southeast-1": "sg",
    "ap-southeast-2": "au", "ap-southeast-4": "au", "ap-south-1": "in", "ap-south-2": "in",
    "ap-east-1": "hk", "ap-southeast-3": "id", "ap-southeast-5": "my",
    "sa-east-1": "br", "me-central-1": "ae", "me-south-1": "bh", "af-south-1": "za", "il-central-1": "il",
    "mx-central-1": "mx",
}  # fmt: skip
GCP: dict[str, str] = {
    "us-central1": "us", "us-east1": "us", "us-east4": "us", "us-east5": "us", "us-south1": "us",
    "us-west1": "us", "us-west2": "us", "us-west3": "us", "us-west4": "us",
    "northamerica-northeast1": "ca", "northamerica-northeast2": "ca", "northamerica-south1": "mx",
    "europe-west1": "eu", "europe-west3": "eu", "europe-west4": "eu", "europe-west8": "eu",
    "europe-west9": "eu", "europe-west10": "eu", "europe-west12": "eu", "europe-north1": "eu",
    "europe-north2": "eu", "europe-central2": "eu", "europe-southwest1": "eu", "europe-west2": "uk",
    "europe-west6": "ch",
    "asia-northeast1": "jp", "asia-northeast2": "jp", "asia-northeast3": "kr", "asia-southeast1": "sg",
    "asia-southeast2": "id", "asia-south1": "in", "asia-south2": "in", "asia-east1": "tw", "asia-east2": "hk",
    "australia-southeast1": "au", "australia-southeast2": "au", "southamerica-east1": "br",
    "southamerica-west1": "cl", "me-central1": "qa", "me-central2": "sa", "me-west1": "il",
    "africa-south1": "za",
}  # fmt: skip
AZURE: dict[str, str] = {
    "eastus": "us", "eastus2": "us", "centralus": "us", "northcentralus": "us", "southcentralus": "us",
    "westcentralus": "us", "westus": "us", "westus2": "us", "westus3": "us",
    "canadacentral": "ca", "canadaeast": "ca",
    "westeurope": "eu", "northeurope": "eu", "francecentral": "eu", "francesouth": "eu",
    "germanywestcentral": "eu", "germanynorth": "eu", "swedencentral": "eu", "italynorth": "eu",
    "polandcentral": "eu", "spaincentral": "eu", "uksouth": "uk", "ukwest": "uk",
    "switzerlandnorth": "ch", "switzerlandwest": "ch", "norwayeast": "no", "norwaywest": "no",
    "japaneast": "jp", "japanwest": "jp", "koreacentral": "kr", "koreasouth": "kr",
    "southeastasia": "sg", "eastasia": "hk", "centralindia": "in", "southindia": "in", "westindia": "in",
    "australiaeast": "au", "australiasoutheast": "au", "australiacentral": "au",
    "brazilsouth": "br", "southafricanorth": "za", "uaenorth": "ae", "qatarcentral": "qa",
    "israelcentral": "il", "mexicocentral": "mx",
}  # fmt: skip
REGIONS: dict[str, dict[str, str]] = {"aws": AWS, "gcp": GCP, "azure": AZURE}

COUNTRIES: frozenset[str] = frozenset({
    "ad", "ae", "af", "ag", "ai", "al", "am", "ao", "aq", "ar", "as", "at", "au", "aw", "ax", "az", "ba",
    "bb", "bd", "be", "bf", "bg", "bh", "bi", "bj", "bl", "bm", "bn", "bo", "bq", "br", "bs", "bt", "bv",
    "bw", "by", "bz", "ca", "cc", "cd", "cf", "cg", "ch", "ci", "ck", "cl", "cm", "cn", "co", "cr", "cu",
    "cv", "cw", "cx", "cy", "cz", "de", "dj", "dk", "dm", "do", "dz", "ec", "ee", "eg", "eh", "er", "es",
    "et", "fi", "fj", "fk", "fm", "fo", "fr", "ga", "gb", "gd", "ge", "gf", "gg", "gh", "gi", "gl", "gm",
    "gn", "gp", "gq", "gr", "gs", "gt", "gu", "gw", "gy", "hk", "hm", "hn", "hr", "ht", "hu", "id", "ie",
    "il", "im", "in", "io", "iq", "ir", "is", "it", "je", "jm", "jo", "jp", "ke", "kg", "kh", "ki", "km",
    "kn", "kp", "kr", "kw", "ky", "kz", "la", "lb", "lc", "li", "lk", "lr", "ls", "lt", "lu", "lv", "ly",
    "ma", "mc", "md", "me", "mf", "mg", "mh", "mk", "ml", "mm", "mn", "mo", "mp", "mq", "mr", "ms", "mt",
    "mu", "mv", "mw", "mx", "my", "mz", "na", "nc", "ne", "nf", "ng", "ni", "nl", "no", "np", "nr", "nu",
    "nz", "om", "pa", "pe", "pf", "pg", "ph", "pk", "pl", "pm", "pn", "pr", "ps", "pt", "pw", "py", "qa",
    "re", "ro", "rs", "ru", "rw", "sa", "sb", "sc", "sd", "se", "sg", "sh", "si", "sj", "sk", "sl", "sm",
    "sn", "so", "sr", "ss", "st", "sv", "sx", "sy", "sz", "tc", "td", "tf", "tg", "th", "tj", "tk", "tl",
    "tm", "tn", "to", "tr", "tt", "tv", "tw", "tz", "ua", "ug", "um", "us", "uy", "uz", "va", "vc", "ve",
    "vg", "vi", "vn", "vu", "wf", "ws", "ye", "yt", "za", "zm", "zw",
})  # fmt: skip
"""ISO 3166-1 alpha-2, lowercase."""
BLOCS: frozenset[str] = frozenset({"eu", "eea", "apac", "uk"})
"""Jurisdictions wider than one country, and `uk`, the name the cloud tables use for Great Britain."""
JURISDICTIONS: frozenset[str] = COUNTRIES | BLOCS


def jurisdiction_of_region(cloud: str | None, region: str) -> str | None:
    """The jurisdiction of a cloud region (of `cloud`, or of any cloud when None); None when unknown."""
    if cloud is not None:
        return REGIONS.get(cloud, {}).get(region)
    for table in REGIONS.values():
        if region in table:
            return table[region]
    return None


def jurisdiction_of(data_region: str) -> str | None:
    """The jurisdiction a `data_region` names (itself, or its cloud region's); None when it names none."""
    lowered = data_region.lower()
    return lowered if lowered in JURISDICTIONS else jurisdiction_of_region(None, data_region)
