"""Recipes are scripts, not modules.

Run one with ``tune run <recipe> --config <config>``; copy one to edit it with
``tune cp <recipe> <dest>``. See ``tune ls`` for the list.
"""

raise ImportError(
    "torchtune recipes are scripts run with `tune run` and copied with `tune cp`; "
    "they are not importable. Copy one to edit it: tune cp lora_finetune_single_device ."
)
