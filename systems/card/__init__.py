"""The card center (synjones platform): its client, page parsers, keypad reader, models
(client.py, pages.py, keypad.py, models.py), service (service.py), the 2013 and /v1/
handlers (legacy.py, v1.py), config section (config.py) and how they are built
(assembly.py). Its simulator is schoolsim/card/."""

from systems.card.config import CardCenterConfig
from systems.plugin import SchoolSystem, Upstream

SYSTEM = SchoolSystem(
    name="card",
    title="the card center",
    upstreams=(Upstream("card", "the card center", CardCenterConfig, simulator_path=""),),
    takes_password=True,
    password_label="card password",  # noqa: S106 - a label, not a password
)
