"""A model's layers split over several devices with accelerate's device map (infer_auto_device_map with max_memory
per device, then dispatch_model): fp16 weights too large for one GPU, spread over two (Kaggle's T4 x2)."""

from __future__ import annotations


def split_device_map(model, max_memory: dict) -> dict:
    """Module -> device (accelerate's infer_auto_device_map): whole decoder layers, filled in order, each device up to
    its max_memory."""
    from accelerate import infer_auto_device_map

    from kaggle_kit.errors import KitError

    device_map = infer_auto_device_map(model, max_memory=max_memory,
                                       no_split_module_classes=list(getattr(model, "_no_split_modules", None) or []))
    offloaded = sorted({str(d) for d in device_map.values() if d not in max_memory})
    if offloaded:  # accelerate would run those layers from host memory or disk: far slower than 4-bit replicas
        raise KitError(f"the model's layers do not fit {len(max_memory)} GPU(s) at "
                       f"{', '.join(f'{m / 2**30:.1f}' for m in max_memory.values())} GiB: some would go to "
                       f"{' and '.join(offloaded)}", hint="use --placement replica with --quantize 4bit")
    return device_map


def split_model(model, max_memory: dict, device_of=None):
    """The model dispatched over the devices of its device map (accelerate moves each layer's inputs where its weights
    are). `device_of` renames the map's devices (a test runs the pieces on "cpu")."""
    from accelerate import dispatch_model

    device_map = split_device_map(model, max_memory)
    used = {d for d in device_map.values()}
    if len(used) < 2:  # one device holds it: no split needed
        return model, device_map
    if device_of is not None:
        device_map = {name: device_of(d) for name, d in device_map.items()}
    return dispatch_model(model, device_map=device_map), device_map
