// Copy buttons: <button data-copy="input-id" hidden> next to a read-only input. Without
// JavaScript the buttons stay hidden and the address can be selected by hand.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const input = document.getElementById(button.dataset.copy);
    const status = button.parentElement.querySelector("[role=status]");
    if (!input) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      input.select();
      let copied = false;
      try {
        await navigator.clipboard.writeText(input.value);
        copied = true;
      } catch {
        copied = document.execCommand && document.execCommand("copy");
      }
      if (status) status.textContent = copied ? "Copied." : "Select the address and copy it.";
    });
  }
  for (const input of document.querySelectorAll("input.feed-url")) {
    input.addEventListener("focus", () => input.select());
  }
});
