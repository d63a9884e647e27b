"""Where a task's data may be pinned: countries, blocs and the cloud regions that lie in them.

A jurisdiction is a country (ISO 3166-1 alpha-2, lowercase; `uk` and `el` are accepted for `gb` and `gr`)
or a bloc of countries (`eu`, `eea`, `apac`). Every cloud region lies in exactly one country, and so in
every bloc that country belongs to: eu-central-1 is in `de`, hence in `eu` and `eea`.

A region name alone can name places in two clouds (Alibaba reuses AWS's names: its eu-west-1 is London,
AWS's is Dublin), so a region is looked up with its cloud; `country_of_region(None, name)` answers only
when every cloud that has the name puts it in the same country. The tables follow the clouds' own region
lists (README, "Residency: sources").
"""

from __future__ import annotations

# Region -> country, per cloud. A region missing here resolves to unknown (and fails `problems`).
AWS: dict[str, str] = {
    "us-east-1": "us", "us-east-2": "us", "us-west-1": "us", "us-west-2": "us",
    "us-gov-east-1": "us", "us-gov-west-1": "us", "ca-central-1": "ca", "ca-west-1": "ca",
    "mx-central-1": "mx", "sa-east-1": "br",
    "eu-west-1": "ie", "eu-west-2": "gb", "eu-west-3": "fr", "eu-central-1": "de", "eu-central-2": "ch",
    "eu-north-1": "se", "eu-south-1": "it", "eu-south-2": "es", "eusc-de-east-1": "de",
    "il-central-1": "il", "me-south-1": "bh", "me-central-1": "ae", "af-south-1": "za",
    "ap-east-1": "hk", "ap-east-2": "tw", "ap-south-1": "in", "ap-south-2": "in",
    "ap-northeast-1": "jp", "ap-northeast-2": "kr", "ap-northeast-3": "jp",
    "ap-southeast-1": "sg", "ap-southeast-2": "au", "ap-southeast-3": "id", "ap-southeast-4": "au",
    "ap-southeast-5": "my", "ap-southeast-6": "nz", "ap-southeast-7": "th",
    "cn-north-1": "cn", "cn-northwest-1": "cn",
}  # fmt: skip
GCP: dict[str, str] = {
    "us-central1": "us", "us-east1": "us", "us-east4": "us", "us-east5": "us", "us-south1": "us",
    "us-west1": "us", "us-west2": "us", "us-west3": "us", "us-west4": "us",
    "northamerica-northeast1": "ca", "northamerica-northeast2": "ca", "northamerica-south1": "mx",
    "southamerica-east1": "br", "southamerica-west1": "cl",
    "europe-west1": "be", "europe-west2": "gb", "europe-west3": "de", "europe-west4": "nl",
    "europe-west6": "ch", "europe-west8": "it", "europe-west9": "fr", "europe-west10": "de",
    "europe-west12": "it", "europe-north1": "fi", "europe-north2": "se", "europe-central2": "pl",
    "europe-southwest1": "es", "me-west1": "il", "me-central1": "qa", "me-central2": "sa",
    "africa-south1": "za", "asia-east1": "tw", "asia-east2": "hk", "asia-northeast1": "jp",
    "asia-northeast2": "jp", "asia-northeast3": "kr", "asia-south1": "in", "asia-south2": "in",
    "asia-southeast1": "sg", "asia-southeast2": "id", "asia-southeast3": "th",
    "australia-southeast1": "au", "australia-southeast2": "au",
}  # fmt: skip
AZURE: dict[str, str] = {
    "eastus": "us", "eastus2": "us", "centralus": "us", "northcentralus": "us", "southcentralus": "us",
    "westcentralus": "us", "westus": "us", "westus2": "us", "westus3": "us",
    "usgovvirginia": "us", "usgovarizona": "us", "usgovtexas": "us",
    "canadacentral": "ca", "canadaeast": "ca", "mexicocentral": "mx", "brazilsouth": "br",
    "brazilsoutheast": "br", "chilecentral": "cl",
    "northeurope": "ie", "westeurope": "nl", "francecentral": "fr", "francesouth": "fr",
    "germanywestcentral": "de", "germanynorth": "de", "swedencentral": "se", "swedensouth": "se",
    "italynorth": "it", "polandcentral": "pl", "spaincentral": "es", "austriaeast": "at",
    "belgiumcentral": "be", "norwayeast": "no", "norwaywest": "no", "switzerlandnorth": "ch",
    "switzerlandwest": "ch", "uksouth": "gb", "ukwest": "gb",
    "uaenorth": "ae", "uaecentral": "ae", "qatarcentral": "qa", "israelcentral": "il",
    "southafricanorth": "za", "southafricawest": "za",
    "centralindia": "in", "southindia": "in", "westindia": "in", "jioindiacentral": "in",
    "jioindiawest": "in", "japaneast": "jp", "japanwest": "jp", "koreacentral": "kr", "koreasouth": "kr",
    "southeastasia": "sg", "eastasia": "hk", "indonesiacentral": "id", "malaysiawest": "my",
    "australiaeast": "au", "australiasoutheast": "au", "australiacentral": "au",
    "australiacentral2": "au", "newzealandnorth": "nz",
    "chinanorth": "cn", "chinanorth2": "cn", "chinanorth3": "cn", "chinaeast": "cn", "chinaeast2": "cn",
    "chinaeast3": "cn",
}  # fmt: skip
OCI: dict[str, str] = {
    "us-ashburn-1": "us", "us-phoenix-1": "us", "us-sanjose-1": "us", "us-chicago-1": "us",
    "us-langley-1": "us", "us-luke-1": "us", "us-gov-ashburn-1": "us", "us-gov-chicago-1": "us",
    "us-gov-phoenix-1": "us", "ca-toronto-1": "ca", "ca-montreal-1": "ca",
    "mx-queretaro-1": "mx", "mx-monterrey-1": "mx", "sa-saopaulo-1": "br", "sa-vinhedo-1": "br",
    "sa-santiago-1": "cl", "sa-valparaiso-1": "cl", "sa-bogota-1": "co",
    "eu-frankfurt-1": "de", "eu-frankfurt-2": "de", "eu-amsterdam-1": "nl", "eu-paris-1": "fr",
    "eu-marseille-1": "fr", "eu-milan-1": "it", "eu-madrid-1": "es", "eu-madrid-2": "es",
    "eu-stockholm-1": "se", "eu-zurich-1": "ch", "eu-jovanovac-1": "rs",
    "uk-london-1": "gb", "uk-cardiff-1": "gb",
    "me-dubai-1": "ae", "me-abudhabi-1": "ae", "me-jeddah-1": "sa", "me-riyadh-1": "sa",
    "il-jerusalem-1": "il", "af-johannesburg-1": "za",
    "ap-tokyo-1": "jp", "ap-osaka-1": "jp", "ap-seoul-1": "kr", "ap-chuncheon-1": "kr",
    "ap-mumbai-1": "in", "ap-hyderabad-1": "in", "ap-singapore-1": "sg", "ap-singapore-2": "sg",
    "ap-sydney-1": "au", "ap-melbourne-1": "au", "ap-batam-1": "id",
}  # fmt: skip
ALIBABA: dict[str, str] = {
    "cn-qingdao": "cn", "cn-beijing": "cn", "cn-zhangjiakou": "cn", "cn-huhehaote": "cn",
    "cn-wulanchabu": "cn", "cn-hangzhou": "cn", "cn-shanghai": "cn", "cn-shenzhen": "cn",
    "cn-heyuan": "cn", "cn-guangzhou": "cn", "cn-chengdu": "cn", "cn-hongkong": "hk",
    "ap-northeast-1": "jp", "ap-northeast-2": "kr", "ap-southeast-1": "sg", "ap-southeast-3": "my",
    "ap-southeast-5": "id", "ap-southeast-6": "ph", "ap-southeast-7": "th", "ap-southeast-8": "my",
    "us-east-1": "us", "us-west-1": "us", "us-southeast-1": "us",
    "eu-central-1": "de", "eu-west-1": "gb", "me-east-1": "ae", "me-central-1": "sa",
}  # fmt: skip
REGIONS: dict[str, dict[str, str]] = {"aws": AWS, "gcp": GCP, "azure": AZURE, "oci": OCI, "alibaba": ALIBABA}
"""Cloud -> its regions. The order is the order a bare `data_region` name is looked up in."""

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
ALIASES: dict[str, str] = {"uk": "gb", "el": "gr"}
"""Names in common use that are not ISO codes: `uk` (and the EU's `el` for Greece)."""

EU: frozenset[str] = frozenset({
    "at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie", "it", "lv", "lt",
    "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se",
})  # fmt: skip
"""The 27 member states of the European Union."""
APAC: frozenset[str] = frozenset({
    "au", "bd", "bn", "bt", "cn", "fj", "fm", "hk", "id", "in", "jp", "kh", "ki", "kr", "la", "lk", "mh",
    "mm", "mn", "mo", "mv", "my", "np", "nr", "nz", "pg", "ph", "pk", "pw", "sb", "sg", "th", "tl", "to",
    "tv", "tw", "vn", "vu", "ws",
})  # fmt: skip
"""Asia-Pacific: East, South and South-East Asia and Oceania (not the Middle East)."""
BLOCS: dict[str, frozenset[str]] = {"eu": EU, "eea": EU | {"is", "li", "no"}, "apac": APAC}
"""Bloc -> its member countries."""
JURISDICTIONS: frozenset[str] = COUNTRIES | frozenset(BLOCS) | frozenset(ALIASES)


def canonical(jurisdiction: str) -> str | None:
    """A jurisdiction as the tables spell it (lowercase, `uk` -> `gb`); None when it names none."""
    lowered = jurisdiction.strip().lower()
    lowered = ALIASES.get(lowered, lowered)
    return lowered if lowered in COUNTRIES or lowered in BLOCS else None


def countries_of(jurisdiction: str) -> frozenset[str] | None:
    """The countries a jurisdiction covers: a country itself, a bloc its members; None when unknown."""
    name = canonical(jurisdiction)
    if name is None:
        return None
    return BLOCS.get(name, frozenset({name}))


def blocs_of(country: str) -> frozenset[str]:
    """The blocs a country belongs to (`de` -> eu, eea)."""
    return frozenset(bloc for bloc, members in BLOCS.items() if country in members)


def region_countries(cloud: str | None, region: str) -> dict[str, str]:
    """Cloud -> country for every cloud (or just `cloud`) that has a region of this name."""
    clouds = [cloud] if cloud is not None else list(REGIONS)
    return {c: REGIONS[c][region] for c in clouds if region in REGIONS.get(c, {})}


def country_of_region(cloud: str | None, region: str) -> str | None:
    """The country of a region of `cloud` (of any cloud when None, if they all agree); None when unknown."""
    countries = set(region_countries(cloud, region).values())
    return countries.pop() if len(countries) == 1 else None


jurisdiction_of_region = country_of_region


def jurisdiction_of(data_region: str) -> str | None:
    """The jurisdiction a `data_region` pins to; None when it names none.

    A jurisdiction names itself; `cloud:region` the region's country; a bare region name the country of
    the first cloud in REGIONS that has it (AWS's eu-west-1, not Alibaba's: the order predates Alibaba).
    """
    named = canonical(data_region)
    if named is not None:
        return named
    cloud, sep, region = data_region.lower().partition(":")
    if sep:
        return country_of_region(cloud, region) if cloud in REGIONS else None
    found = region_countries(None, data_region.lower())
    return next(iter(found.values()), None)
