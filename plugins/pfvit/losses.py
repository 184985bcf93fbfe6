"""PF-ViT's losses besides L_emo (which is the run's registered loss, ``loss.name``): eqs. 2, 6, 7-8."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_targets(classes: torch.Tensor, num_classes: int, real: bool) -> torch.Tensor:
    """Eq. 8: the K+1 binary targets ``d``: one-hot ``classes`` (the label y, or the neutral class c for a
    poker face) in the first K units, and 1 in unit K+1 for a real image, 0 for a generated one."""
    onehot = F.one_hot(classes, num_classes).float()
    realness = torch.full((len(classes), 1), 1.0 if real else 0.0, device=classes.device)
    return torch.cat([onehot, realness], dim=1)


def discrimination_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for one kind of image: binary cross-entropy of ``sigma(D(x'))`` against ``d``, summed over the
    K+1 units, averaged over the samples."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").sum(dim=1).mean()


def generator_adversarial_loss(fake_logits: list[torch.Tensor], fake_targets: list[torch.Tensor],
                               mode: str) -> torch.Tensor:
    """What E, S and G minimise against D, over the generated kinds (reconstruction, poker face).

    ``minimax``: the paper's words taken literally, E, S, G maximise eq. 7's terms on generated images,
    i.e. minimise their negation (class units included). ``nonsaturating`` (default): the generated images
    must be judged real (unit K+1 -> 1) and of their class (y for the reconstruction, neutral for the poker
    face), which is what §3.2 says the game achieves ("fool D", "a very realistic neutral face"); it is
    the standard non-saturating form of the same game and keeps gradients alive when D wins early.
    """
    losses = []
    for logits, targets in zip(fake_logits, fake_targets):
        if mode == "minimax":
            losses.append(-discrimination_loss(logits, targets))
        else:
            as_real = targets.clone()
            as_real[:, -1] = 1.0
            losses.append(discrimination_loss(logits, as_real))
    return torch.stack(losses).mean()


def reconstruction_distance(pred: torch.Tensor, target: torch.Tensor, distance: str) -> torch.Tensor:
    """Per-sample distance ``[B]`` between patch tensors ``[B, N, P]``."""
    diff = (pred.float() - target.float()).flatten(1)
    return diff.pow(2).mean(dim=1) if distance == "mse" else diff.norm(dim=1)


def reconstruction_loss(reconstruction: torch.Tensor, poker: torch.Tensor, target: torch.Tensor,
                        neutral: torch.Tensor, distance: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6 as its two terms: ``E[d(x_hat, x)]`` and ``E[1[y = c] d(x_tilde, x)]``, both averaged over the
    whole batch (the indicator zeroes the non-neutral samples' poker-face term)."""
    rec = reconstruction_distance(reconstruction, target, distance).mean()
    poker_term = (reconstruction_distance(poker, target, distance) * neutral.float()).mean()
    return rec, poker_term


def abs_cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``|<a, b>| / (|a| |b|)`` along the last dimension."""
    a, b = a.float(), b.float()
    return (a * b).sum(dim=-1).abs() / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=eps)


def orthogonality(v_e: torch.Tensor, v_p: torch.Tensor, over: str) -> torch.Tensor:
    """Eq. 2's constraint as a loss: mean ``|cos(V_e, V_p)|`` per token (``token``) or per sample over the
    flattened ``(N+1) x L`` tokens (``sample``)."""
    if over == "sample":
        return abs_cosine(v_e.flatten(1), v_p.flatten(1)).mean()
    return abs_cosine(v_e, v_p).mean()
