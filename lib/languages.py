"""The languages the toolkit knows: the three target languages and English (forgetting checks)."""

TARGET_LANGUAGES = ("pl", "tr", "ru")
LANGUAGES = (*TARGET_LANGUAGES, "en")
