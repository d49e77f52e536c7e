"""The base every layer and model derives from: named parameters, their gradients, train/eval mode.

A module owns parameters (``self.add_parameter(name, array)``) and child modules (any attribute that is a
``Module``, or ``self.add_module``). ``parameters()`` and ``grads()`` return dicts of the live arrays,
named like a PyTorch state dict (``"lstm.weight_ih_l0"``): writing into them changes the model.
``state_dict()`` / ``load_state_dict(d, strict=True)`` are the same under PyTorch's names and behaviour, so
weights move between lstmzoo and ``torch.nn.Module`` as a dict of arrays.

Gradients accumulate (``+=``) across ``backward`` calls until ``zero_grad()``, as in PyTorch.

``flatten()`` (called by the optimizers and the trainer on the root module) moves every parameter, and every
gradient, into one contiguous buffer and leaves views per parameter behind, so an optimizer step is one
vectorised update and a data-parallel all-reduce moves one buffer.
"""

from typing import NamedTuple

from ..array import array_module

# Bumped whenever any module gains a parameter or a child module: a flat module whose owners were listed at this
# version, and whose parameters are still views of its buffer, need not be walked again (``Module.flatten``).
_structure_version = 0


def _structure_changed():
    global _structure_version
    _structure_version += 1


class IncompatibleKeys(NamedTuple):
    """What ``Module.load_state_dict`` did not match, as PyTorch reports it."""
    missing_keys: list
    unexpected_keys: list


class Module:
    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_grads", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_flat", None)
        object.__setattr__(self, "_flat_owners", None)  # (structure version, [(params dict, name), ...]) when flat

    # -------------------------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._modules[name] = value
            _structure_changed()
        object.__setattr__(self, name, value)

    def add_module(self, name, module):
        self._modules[name] = module
        _structure_changed()
        object.__setattr__(self, name, module)
        return module

    def add_parameter(self, name, value):
        """Register ``value`` (an array) as a parameter with a zero gradient beside it."""
        self._params[name] = value
        self._grads[name] = array_module(value).zeros_like(value)
        _structure_changed()
        return value

    # ------------------------------------------------------------------------------------ access
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def parameters(self):
        """Dict of name -> parameter array (live views: writing into them changes the module)."""
        return {prefix + name: p for prefix, m in self.named_modules() for name, p in m._params.items()}

    def grads(self):
        """Dict of name -> gradient array, same names and shapes as ``parameters()``."""
        return {prefix + name: g for prefix, m in self.named_modules() for name, g in m._grads.items()}

    def load_parameters(self, values, strict=True):
        """Copy arrays into the parameters with the same names, checking shapes; ``strict`` also
        requires the names to match exactly."""
        own = self.parameters()
        if strict:
            missing, unexpected = sorted(set(own) - set(values)), sorted(set(values) - set(own))
            if missing or unexpected:
                raise ValueError(f"parameter names differ: missing {missing}, unexpected {unexpected}")
        shared = {name: value for name, value in values.items() if name in own}
        for name, value in shared.items():  # every shape first, so a mismatch changes nothing
            if tuple(value.shape) != tuple(own[name].shape):
                raise ValueError(f"parameter {name!r} has shape {tuple(own[name].shape)}, "
                                 f"got {tuple(value.shape)}")
        for name, value in shared.items():
            own[name][...] = array_module(own[name]).asarray(value, dtype=own[name].dtype)

    def state_dict(self):
        """PyTorch's ``state_dict()``: a dict of name -> parameter array, in registration order. As in PyTorch
        the arrays share memory with the parameters (copy them to keep a snapshot)."""
        return self.parameters()

    def load_state_dict(self, state_dict, strict=True):
        """PyTorch's ``load_state_dict``: copy the arrays (NumPy, CuPy, or anything ``numpy.asarray`` takes, a
        CPU torch tensor included) into the parameters of the same names and return
        ``IncompatibleKeys(missing_keys, unexpected_keys)``. With ``strict`` (the default) names that differ
        raise ValueError; a shape that differs always does, and then nothing is changed."""
        own = self.parameters()
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"error(s) in loading state_dict for {type(self).__name__}: missing key(s) "
                             f"{missing}, unexpected key(s) {unexpected}")
        self.load_parameters({name: value for name, value in state_dict.items() if name in own}, strict=False)
        return IncompatibleKeys(missing, unexpected)

    def zero_grad(self):
        if self._flat is not None:
            self._flat[1][...] = 0
        else:
            for g in self.grads().values():
                g[...] = 0

    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def num_parameters(self):
        return sum(int(p.size) for p in self.parameters().values())

    # ------------------------------------------------------------------------------- flat buffer
    def flatten(self):
        """Move all parameters and gradients into one contiguous buffer each; returns (params, grads).

        Idempotent: a module already flat returns its buffers. Views into the buffers replace the
        arrays held by each sub-module, so layers keep working unchanged.

        The optimizers and gradient clipping call it every step, so a module that is still flat answers without
        walking its children: when no module gained a parameter or a child since it was flattened and every
        parameter is still a view whose base is the buffer.
        """
        flat, known = self._flat, getattr(self, "_flat_owners", None)
        if flat is not None and known is not None and known[0] == _structure_version and all(
                getattr(params.get(name), "base", None) is flat[0] for params, name in known[1]):
            return flat
        owners = [(m, name) for _, m in self.named_modules() for name in m._params]
        if self._flat is not None and all(_is_view_of(m._params[n], self._flat[0]) for m, n in owners):
            self._remember_owners(owners)
            return self._flat
        if not owners:
            raise ValueError("the module has no parameters to flatten")
        first = owners[0][0]._params[owners[0][1]]
        xp = array_module(first)
        dtypes = {m._params[n].dtype for m, n in owners}
        if len(dtypes) != 1:
            raise ValueError(f"all parameters must share one dtype to be flattened, found {sorted(map(str, dtypes))}")
        total = sum(int(m._params[n].size) for m, n in owners)
        flat_p = xp.empty(total, dtype=first.dtype)
        flat_g = xp.zeros(total, dtype=first.dtype)
        offset = 0
        for m, n in owners:
            p, g = m._params[n], m._grads[n]
            view_p = flat_p[offset:offset + p.size].reshape(p.shape)
            view_g = flat_g[offset:offset + p.size].reshape(p.shape)
            view_p[...] = p
            view_g[...] = g
            m._params[n], m._grads[n] = view_p, view_g
            m._on_parameters_moved()
            offset += p.size
        object.__setattr__(self, "_flat", (flat_p, flat_g))
        self._remember_owners(owners)
        return self._flat

    def _remember_owners(self, owners):
        object.__setattr__(self, "_flat_owners", (_structure_version, [(m._params, n) for m, n in owners]))

    def _on_parameters_moved(self):
        """Hook for layers that cache references to their parameter arrays."""

    # ------------------------------------------------------------------------------- computation
    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        children = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{children}{chr(10) if children else ''})"

    def extra_repr(self):
        return ""


def _is_view_of(a, base):
    return bool(array_module(a).shares_memory(a, base))
