"""Words of the synthetic world: hashtags with Zipf frequencies, captions, comments, bios.

Instagram text is a long tail: a few tags (#love, #instagood) are everywhere and hundreds
are rare; the drug scene hides behind evasive spellings (x@nax, p3rcs), emoji that stand
in for words (🔌 plug, 🍃 weed, ❄️ coke, 💊 pills, 🍇 lean), look-alike Unicode letters and
other languages (#mota, #pastillas); dealers paste the same wall of tags under every post
and leave a contact (WhatsApp, Telegram, Wickr, a phone number, a shortened link). Innocent
posters use many of the same words in other senses ("trap music", "gas prices", "leg day,
stay lean") and many of the same channels (a bakery's WhatsApp, an influencer's link).

Every list's order is its popularity rank: :func:`zipf` turns a list into sampling
weights. Nothing here draws randomness itself; ``synthetic`` does, from its seeded stream.
"""

from __future__ import annotations

import numpy as np

DRUG_CLASSES: tuple[str, ...] = ("weed", "pills", "syrup")

# The paper's search dictionary (Sec. 2.3), per class, most searched first.
DICTIONARY: dict[str, tuple[str, ...]] = {
    "weed": ("weed", "kush", "420", "marijuana", "ganja", "dank", "loud", "cannabis", "thc",
             "blunt", "stoner", "710", "edibles", "og"),
    "pills": ("xanax", "xans", "bars", "percocet", "percs", "oxy", "molly", "adderall", "pills",
              "roxy", "norco", "lortab", "perc30"),
    "syrup": ("lean", "sizzurp", "purpledrank", "codeine", "actavis", "promethazine", "drank",
              "dirtysprite", "wockhardt", "doublecup"),
}
# General search terms: they find dealers and, just as often, everybody else
# (a phone plug, a dope outfit, gas prices, trap music, high school).
GENERAL_TERMS: tuple[str, ...] = ("plug", "dope", "gas", "trap", "high", "connect")
ALL_TERMS: tuple[str, ...] = tuple(t for v in DICTIONARY.values() for t in v) + GENERAL_TERMS

# Tags of the drug scene beyond the dictionary, per class, by popularity.
SCENE_TAGS: dict[str, tuple[str, ...]] = {
    "weed": ("weedporn", "420life", "kushlife", "stonernation", "smokeweedeveryday", "cannabiscommunity",
             "thcgang", "dabs", "highsociety", "weedstagram", "stonerlife", "dankbuds", "zaza", "exotics",
             "runtz", "gelato", "prerolls", "concentrates", "shatter", "710life", "mota", "marihuana",
             "hierba", "yerba", "porro", "maconha", "weedlovers", "ganjagirls", "blazeit", "sativa",
             "indica", "hybrid", "trichomes", "loudpack", "gaspack", "cannabisculture", "budtender",
             "ounce", "qp", "zips"),
    "pills": ("xanaxbars", "xanaxnation", "percocet30", "m30", "blues", "oxycontin", "roxies", "addy",
              "mollies", "pharma", "pharmacy", "pillsforsale", "pastillas", "tachas", "benzos", "opioids",
              "hulks", "whitebars", "greenhulks", "yellowbars", "pressed", "legitpharma", "rx", "painmeds",
              "oxys", "dilaudid", "vicodin", "tramadol", "valium", "klonopin"),
    "syrup": ("leanlife", "purplelean", "codeinecrazy", "sippin", "wock", "hitech", "tris", "pintsforsale",
              "muddy", "jarabe", "purplestuff", "leandrinker", "actavislean", "sizzurplife", "styrofoam",
              "doublecupped", "pourup", "promethazinecodeine", "drankin", "purplerain"),
}
# Tags of the scene that name no drug: sales talk, shipping, payment.
SALES_TAGS: tuple[str, ...] = (
    "plugwalk", "plugsonly", "plugsnearme", "trapstar", "traplife", "shipping", "discreetshipping",
    "overnight", "ship24h", "worldwideshipping", "cashapp", "btc", "bitcoin", "menu", "dmforprices",
    "dmtoorder", "plugnation", "connectplug", "nolowballers", "serviceonly", "deliverynow", "frontdoor",
    "hmu", "dealz", "stockup", "restocked", "freshdrop", "packs", "gasstation", "exoticplug",
)
# Everyday Instagram tags, most popular first.
GENERIC_BASE: tuple[str, ...] = (
    "love", "instagood", "photooftheday", "fashion", "beautiful", "happy", "cute", "tbt", "like4like",
    "followme", "picoftheday", "follow", "me", "selfie", "summer", "art", "instadaily", "friends",
    "repost", "nature", "girl", "fun", "style", "smile", "food", "instalike", "family", "travel",
    "likeforlike", "fitness", "follow4follow", "nofilter", "life", "beauty", "amazing", "instamood",
    "instagram", "photography", "vscocam", "sun", "photo", "music", "beach", "followforfollow", "bestoftheday",
    "sky", "ootd", "sunset", "dog", "vsco", "l4l", "makeup", "f4f", "foodporn", "hair", "pretty",
    "swag", "cat", "model", "motivation", "girls", "baby", "party", "cool", "lol", "gym", "design",
    "instapic", "funny", "healthy", "christmas", "night", "lifestyle", "yummy", "flowers", "hot",
    "instafood", "wedding", "fit", "handmade", "black", "pink", "blue", "work", "workout", "blackandwhite",
    "drawing", "inspiration", "home", "holiday", "christmas", "nyc", "london", "sea", "instacool",
    "goodmorning", "iphoneonly", "weekend", "mood", "vibes", "goals", "blessed", "squad", "hiphop",
    "rap", "trapmusic", "producer", "beats", "newmusic", "soundcloud", "dj", "edm", "concert", "festival",
    "legday", "gains", "bodybuilding", "leanbulk", "cleaneating", "vegan", "mealprep", "brunch", "coffee",
    "latte", "matcha", "smoothie", "pizza", "burger", "tacos", "bbq", "dessert", "cake", "baking",
    "plants", "plantsofinstagram", "houseplants", "garden", "gardening", "succulents", "monstera",
    "vitamins", "supplements", "wellness", "selfcare", "skincare", "nails", "nailart", "lashes",
    "cars", "carsofinstagram", "jdm", "streetwear", "sneakers", "hypebeast", "tattoo", "ink", "barber",
    "fade", "haircut", "dogsofinstagram", "catsofinstagram", "puppy", "pets", "kids", "mom", "dad",
    "graduation", "highschool", "college", "school", "birthday", "bday", "anniversary", "throwback",
    "flashback", "memories", "roadtrip", "hiking", "mountains", "lake", "camping", "surf", "skate",
    "basketball", "football", "soccer", "nba", "gaming", "gamer", "ps5", "xbox", "twitch", "anime",
    "memes", "dankmemes", "meme", "comedy", "relatable", "quotes", "sundayfunday", "mondaymotivation",
    "tgif", "friday", "saturday", "sunday", "weekendvibes", "nightout", "drinks", "cocktails", "wine",
    "beer", "grapesoda", "purple", "green", "gasprices", "phoneplug", "dopeoutfit", "getlifted",
    "highlife", "naturalhigh", "mileh", "bars", "spittingbars", "freestyle", "lyrics", "ganjaaudio",
    "bakery", "cupcakes", "smallbusiness", "shoplocal", "supportsmallbusiness", "etsy", "forsale",
    "giveaway", "contest", "sale", "newin", "outfit", "jewelry", "realestate", "justlisted", "yoga",
    "meditation", "running", "marathon", "crossfit", "boxing", "mma", "zumba", "salsa", "latina",
    "mexico", "tacotuesday", "fiesta", "comida", "amor", "familia", "feliz", "verano", "playa",
    "brasil", "paris", "berlin", "tokyo", "toronto", "miami", "atlanta", "houston", "chicago", "losangeles",
)
# A second rank of tags made of two common parts, as people coin them (#nycfood, #gymlife).
_COMPOUND_HEADS = ("nyc", "la", "atl", "miami", "chi", "gym", "food", "beach", "dog", "coffee", "car",
                   "travel", "fit", "music", "art", "photo", "girl", "boy", "mom", "summer")
_COMPOUND_TAILS = ("life", "gram", "lover", "daily", "vibes", "goals", "time", "style", "oftheday", "addict")


def _compounds() -> tuple[str, ...]:
    out: list[str] = []
    seen = set(GENERIC_BASE)
    # interleave so that rank falls smoothly: head 0 tail 0, head 1 tail 1, ...
    for k in range(len(_COMPOUND_TAILS)):
        for i, head in enumerate(_COMPOUND_HEADS):
            tag = head + _COMPOUND_TAILS[(i + k) % len(_COMPOUND_TAILS)]
            if tag not in seen:
                seen.add(tag)
                out.append(tag)
    return tuple(out)


GENERIC_TAGS: tuple[str, ...] = tuple(dict.fromkeys(GENERIC_BASE)) + _compounds()

# Evasive spellings that dodge the platform's hashtag bans.
EVASIVE: dict[str, tuple[str, ...]] = {
    "xanax": ("x@nax", "xan@x", "xannies", "xanaxx", "xxanax"), "xans": ("x@ns", "xannys", "x4ns"),
    "percs": ("p3rcs", "perkz", "p3rks"), "percocet": ("perc0cet", "p3rcocet"), "oxy": ("0xy", "oxxy"),
    "molly": ("m0lly", "mollyy"), "adderall": ("add3rall", "addyz"), "weed": ("w33d", "weeed", "we3d"),
    "kush": ("ku$h", "kushh"), "marijuana": ("mar1juana", "marijuanna"), "ganja": ("g@nja",),
    "lean": ("l3an", "leann", "le@n"), "codeine": ("c0deine", "codiene"), "sizzurp": ("sizzurpp", "s1zzurp"),
    "dank": ("d4nk",), "loud": ("l0ud",), "bars": ("b@rs", "barz"), "plug": ("plugg", "plvg", "pluggg"),
    "drank": ("dr@nk",), "cannabis": ("c@nnabis",), "thc": ("thcc", "7hc"), "pills": ("pil1s", "piils"),
}
# Emoji that stand in for words in captions.
EMOJI_FOR: dict[str, str] = {"plug": "🔌", "weed": "🍃", "gas": "⛽", "coke": "❄️", "pills": "💊", "lean": "🍇",
                             "syrup": "🥤", "money": "💰", "shipping": "📦", "loud": "💨", "fire": "🔥"}
# Latin letters and their Cyrillic or Greek look-alikes (homoglyphs).
LOOKALIKE: dict[str, str] = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}

SLANG: dict[str, tuple[str, ...]] = {
    "weed": ("loud", "gas", "za", "exotic", "top shelf", "zaza", "fire buds", "og kush", "purple haze",
             "sour diesel", "gelato", "runtz", "dabs", "wax", "prerolls", "eighths", "zips", "qp", "flower",
             "cali packs", "moonrocks", "carts", "mota", "tree"),
    "pills": ("xans", "bars", "percs", "blues", "m30s", "roxys", "yellow school buses", "white bars",
              "green hulks", "addys", "mollies", "footballs", "beans", "tachas", "pastillas", "30s", "10s",
              "pressies", "benzos"),
    "syrup": ("lean", "drank", "sizzurp", "wock", "act", "tris", "hi-tech", "purple", "codeine",
              "the muddy", "double cup", "pints", "4s", "8s", "jarabe", "barre", "the sauce"),
}
UNITS: dict[str, tuple[str, ...]] = {
    "weed": ("a g", "an 8th", "a quarter", "a half", "a zip", "a qp", "a pound", "2 grams"),
    "pills": ("one", "a pack", "10 for", "a 100 count", "a strip", "20 for", "a bottle"),
    "syrup": ("a 4", "an 8", "a pint", "a sealed pint", "a cup", "2 pints"),
}
DRUG_EMOJI = ("🍃", "🌿", "💨", "🔥", "🍁", "💊", "💜", "🍇", "🥤", "😵", "🤑", "💰", "📦", "🚀", "⛽", "🔌", "❄️", "🍄")
EMOJI = ("😂", "❤️", "🙌", "😍", "✨", "🎉", "🎶", "📸", "👀", "💯", "😎", "🙏", "🥰", "😭", "🤷", "🌸", "☀️",
         "🍕", "🏀", "🐶", "💪", "🥳", "😴", "🤣", "💕", "🌊", "👑", "🤩", "😅", "🙈")

EXPLICIT: dict[str, tuple[str, ...]] = {
    "weed": ("got that {s} {e}", "{s} just landed {e}{e}", "who need {s}? {e}", "smokin {s} all day {e}",
             "fresh batch of {s} {e} {cta}", "rolling up some {s} {e}", "{s} {s} {s} {e}",
             "wake n bake with the {s} {e}", "this {s} hits different {e}", "{u} of {s} {price} {e}",
             "{s} back in stock {cta}", "new strain alert: {s} {e} {price}", "{e} {s} {e} {cta}",
             "tapped in w the {s} {e}", "{s} for the low {price} {cta}"),
    "pills": ("popped a couple {s} {e}", "{s} in stock {e} {cta}", "got {s} for the low {e}",
              "{n} {s} left {e}", "plug came thru with the {s} {e}", "need {s}? {cta}",
              "{s} and chill {e}", "real {s} not pressed {e}", "{u} {s} {price} {e}", "{s} {s} {s} 💊 {cta}",
              "pharma grade {s} {e} {price}", "{e}{e} {s} restocked {cta}"),
    "syrup": ("sippin {s} all day {e}", "pour up the {s} {e}", "{s} got me slow {e}",
              "double cup of {s} {e}", "{s} season {e} {cta}", "muddy {s} {e}{e}",
              "real {s} no fake {e}", "lil {s} to start the day {e}", "{u} of {s} {price} {cta}",
              "{s} sealed {e} {cta}", "got {s} by the pint {e} {price}"),
}
# Captions that name a dictionary word in another sense, per class and for the general terms.
INNOCENT: dict[str, tuple[str, ...]] = {
    "weed": ("pulled weeds all morning 🌱", "gas prices are crazy", "this song is loud af", "happy 420 to my bday twin",
             "stoner rock night 🎸", "kush clothing drop is live", "weed killer for the lawn works", "og squad reunion",
             "new plant baby 🌿 {place}", "matcha everything 🍵", "420 friendly apartment? no just the address lol",
             "dank memes only", "garden update: {n} tomatoes"),
    "pills": ("taking my vitamins 💊 #health", "spitting bars 🎤", "molly's bday party 🎉", "pills for this migraine ugh",
              "new bars on the track", "adderall shortage is real, called the pharmacy", "gym bars and plates",
              "fish oil + vitamin d every morning", "pharmacy tech life 👩‍⚕️", "chocolate bars for the road",
              "benadryl and bed, allergies are killing me"),
    "syrup": ("leg day, stay lean 💪", "grape soda hits different 🍇", "drank too much coffee", "lean bulk week {n}",
              "cough syrup and tea, so sick 🤒", "purple drink at the fair", "lean on me 🎶",
              "pancakes with maple syrup 🥞", "purple rain 💜 rip prince", "wine night with the girls 🍷"),
    "general": ("my phone plug is the best 🔌", "dope outfit today", "trap music all night 🎧", "high school reunion 🎓",
                "gas station snacks 🍫", "the connect for cheap flights ✈️", "this beat is dope 🔥",
                "trap yoga is a thing now", "high up in the mountains ⛰️", "plug in your phone before the road trip",
                "dope new kicks 👟", "sunday funday at {place}", "my hair stylist is the plug 💇"),
}
GENERIC_CAPTION = {
    "subject": ("me", "us", "the squad", "my dog", "baby girl", "the fam", "this guy", "mom and me", "my bestie",
                "the crew", "lil bro", "my cat", "grandma", "the team", "coworkers"),
    "verb": ("chillin at", "brunch at", "lost in", "back at", "first time at", "sunset at", "throwback to",
             "road trip to", "dinner at", "weekend in", "game day at", "date night at", "birthday at"),
    "place": ("the beach", "the lake", "grandma's", "the park", "downtown", "the mall", "the studio", "the gym",
              "the game", "the mountains", "taco tuesday", "the fair", "home", "the rooftop", "miami", "nyc",
              "the bay", "church", "the office", "the airport"),
    "tail": ("", "", "lol", "again", "finally", "all day", "with the best people", "tbh", "no regrets",
             "can't wait to go back", "never again lol", "10/10", "so blessed", "miss this"),
}
VAGUE = ("vibes", "mood", "lol", "no caption needed", "good times w the squad", "weekend", "feeling myself",
         "late night", "who up", "u already know", "lit", "smh", "that's it", "blessed", "chillin",
         "new week new me", "rate 1-10", "caption this", "tap in", "active", "link in bio", "back at it",
         "you know what it is", "let's get it", "stay tuned", "drop a 🔥 if", "hmu", "we outside")
CTA = ("dm to order", "dm for prices", "hmu", "text {phone}", "ship nationwide 📦", "discreet shipping",
       "cashapp ${handle}", "venmo @{handle}", "paypal accepted", "snap: {handle}", "kik me {handle}",
       "wickr: {handle}", "menu in bio", "serious buyers only", "overnight delivery", "prices in dm",
       "whatsapp {intl}", "telegram @{handle}", "t.me/{handle}", "signal {phone}", "🔌 in bio", "{link}",
       "order here {link}", "wickr me {handle} 📦", "📞 {phone}", "btc accepted", "tap in {link}")
# Innocent businesses and influencers use the same channels.
BUSINESS = ("cakes to order 🎂 whatsapp {intl}", "nails by appointment, dm or {link}", "new merch {link}",
            "lashes available this week, text {phone}", "shop the look {link}", "tickets {link}",
            "tutoring slots open 📚 telegram @{handle}", "commissions open ✏️ dm me", "free shipping this weekend 📦",
            "venmo @{handle} for the raffle", "beats for sale 🎹 {link}", "catering orders {phone}")
SHORTENERS = ("bit.ly", "tinyurl.com", "linktr.ee", "t.co", "cutt.ly", "rb.gy", "is.gd", "shorturl.at")
GENERIC_COMMENTS = ("🔥🔥", "nice", "love this", "where u at", "😂😂😂", "goals", "lit", "😍", "facts", "bro",
                    "miss u", "yesss", "wow", "💯", "lmaooo", "same", "omg", "cute", "need this", "how much?",
                    "where'd u get that", "🙌🙌", "queen 👑", "so good", "take me with u", "dm me", "link?")
DRUG_COMMENTS = ("price?", "plug??", "u ship to ny?", "need that", "still got some?", "lemme get a zip",
                 "how much for 10", "u deliver?", "where u located", "legit?", "menu?", "🔌??", "u got carts?",
                 "tapped in", "real or pressed?")
EVIDENCE_COMMENTS = ("dm me", "text {phone}", "cashapp only ${handle}", "ship nationwide 📦", "check dm",
                     "venmo @{handle}", "same day delivery", "dm for menu", "snap {handle}", "whatsapp {intl}",
                     "telegram @{handle}", "{link}")
BIO_PLAIN = ("just vibes", "🎧 music lover", "22 | {city}", "living my best life", "don't follow me i'm lost too",
             "🌿 stoner life", "artist | dreamer", "{city} 📍", "mom of 2 ❤️", "gym rat 💪", "420 friendly 🍃",
             "sippin & vibin 💜", "rip bro 🙏", "ig: {handle}", "", "snap: {handle}", "no days off",
             "{link}", "bookings: {link}", "whatsapp {intl} for orders 🎂", "🔌 phone repairs {city}")
BIO_EVIDENCE = ("dm to order 📦", "text {phone} for menu", "ship worldwide 🌎 cashapp ${handle}", "plug 🔌 dm for prices",
                "wickr: {handle} | overnight delivery", "venmo @{handle} | discreet shipping",
                "menu in highlights 💊 serious buyers only", "call/text {phone}", "telegram @{handle} 📦",
                "whatsapp {intl} | worldwide", "menu 👉 {link}", "🔌🍃💊🍇 {link}")
CITIES = ("LA", "NYC", "ATL", "HTX", "Chi", "Miami", "Bay Area", "Detroit", "Denver", "Philly", "Seattle", "Vegas",
          "London", "Toronto", "Madrid", "CDMX", "Berlin", "Sydney")
NAME_PARTS = ("kush", "plug", "xan", "lean", "og", "trap", "dank", "cali", "purp", "gas", "loud", "smoke",
              "lil", "big", "young", "baby", "king", "queen", "real", "the", "its", "official", "mr", "miss",
              "jay", "sarah", "mike", "ash", "tony", "kay", "dre", "nina", "luis", "ari", "zoe", "sam", "max",
              "vibes", "life", "gang", "boy", "girl", "world", "music", "art", "daily", "fit", "chef")


def zipf(n: int, s: float = 1.0, q: float = 2.7) -> np.ndarray:
    """Zipf-Mandelbrot weights of ranks 0..n-1 (sum 1): weight ~ 1 / (rank + q) ** s."""
    w = 1.0 / (np.arange(n) + q) ** s
    return w / w.sum()
