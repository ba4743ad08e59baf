"""The post's chart: loss and accuracy per epoch on two y axes (Altair, imported only here)."""

LOSS_COLOUR, ACC_COLOUR = "#5276A7", "#57A44C"  # the post's colours


def history_chart(history):
    """An Altair layer chart of a History: loss (left axis) and accuracy (right axis),
    solid lines for the training set, dashed for the test set."""
    import altair as alt

    rows = []
    for i, epoch in enumerate(history.epoch):
        rows.append({"epoch": epoch, "set": "train", "loss": history.train_loss[i], "accuracy": history.train_acc[i]})
        if history.test_acc:
            rows.append({"epoch": epoch, "set": "test", "loss": history.test_loss[i], "accuracy": history.test_acc[i]})
    data = alt.Data(values=rows)
    losses = [r["loss"] for r in rows]
    accs = [r["accuracy"] for r in rows]
    dash = alt.StrokeDash("set:N", scale=alt.Scale(domain=["train", "test"], range=[[1, 0], [6, 3]]),
                          legend=alt.Legend(title="set"))
    base = alt.Chart(data).encode(alt.X("epoch:Q", axis=alt.Axis(title="epoch", tickMinStep=1)), dash)
    loss_line = base.mark_line(color=LOSS_COLOUR, interpolate="monotone", point=alt.OverlayMarkDef(color=LOSS_COLOUR)).encode(
        alt.Y("loss:Q", axis=alt.Axis(title="Loss", titleColor=LOSS_COLOUR), scale=alt.Scale(domain=[0.0, max(losses)])),
        tooltip=["epoch:Q", "set:N", "loss:Q"],
    )
    acc_line = base.mark_line(color=ACC_COLOUR, interpolate="monotone", point=alt.OverlayMarkDef(color=ACC_COLOUR)).encode(
        alt.Y("accuracy:Q", axis=alt.Axis(title="Correct", titleColor=ACC_COLOUR),
              scale=alt.Scale(domain=[min(accs), 1.0])),
        tooltip=["epoch:Q", "set:N", "accuracy:Q"],
    )
    return (
        alt.layer(loss_line, acc_line)
        .resolve_scale(y="independent")
        .properties(width=480, height=300, title="bareprop: loss and accuracy per epoch")
    )
