"""Dates and times as the lab reads them wherever Django formats them (the admin's lists and forms): 24-hour
clock, and with a moment, its zone's name: "Fri 4 Dec 2026 14:33 CET", not "Dec. 4, 2026, 2:33 p.m."."""
DATETIME_FORMAT = "D j M Y H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "D j M Y"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
