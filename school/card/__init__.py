"""The card center (synjones platform): its client, page parsers, keypad reader and models."""
