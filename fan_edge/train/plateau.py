"""Is a finished run still on the initial plateau? A pure function of its metrics history.

From scratch, a video network first sits on a plateau: it predicts the class prior, the loss
stays near its starting value and validation stays near chance. A run that ends there is
not a model, and says nothing about the method: `fan-edge train` says so instead of
writing a checkpoint that looks finished.
"""


def chance_top1(num_classes: int) -> float:
    return 100.0 / num_classes


def near_chance(top1: float, num_classes: int) -> bool:
    """Within twice chance (at most 10 points above it): a guess, not a model."""
    chance = chance_top1(num_classes)
    return top1 < min(2 * chance, chance + 10.0)


def plateau_warning(history: list[dict], num_classes: int) -> str | None:
    """A one-line warning saying what to do if the run ended on the plateau, else None.

    On the plateau: the training loss is within 10% of the first epoch's and, when the run
    validated, top-1 at the highest trained count is near chance. Validation near chance
    with a falling loss is either a run stopped just as it leaves the plateau or a model
    fitting what it cannot generalise (mismatched labels).
    """
    if not history:
        return None
    first, last = history[0]["train_loss"], history[-1]["train_loss"]
    loss_flat = not last < 0.9 * first  # NaN counts as flat
    val = history[-1].get("val")
    if val:
        count = max(val, key=int)
        top1 = val[count]["top1"]
        if not near_chance(top1, num_classes):
            return None
        seen = f"validation top-1 {top1:.1f}% at {count}F, chance {chance_top1(num_classes):.1f}%"
        if not loss_flat:
            return (
                f"validation is near chance after {len(history)} epochs ({seen}) although "
                f"the training loss fell from {first:.3f} to {last:.3f}: train longer "
                "(--epochs) and check that validation labels match training ones"
            )
    elif not loss_flat:
        return None
    else:
        seen = "not validated"
    return (
        f"still on the initial plateau after {len(history)} epochs ({seen}; loss "
        f"{last:.3f}, first epoch {first:.3f}): train longer (--epochs), start from a "
        "pretrained checkpoint (--init), or check that labels match the videos"
    )
