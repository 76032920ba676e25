// Reads a leaked sample file chosen on the incident page into the form's text area, so the
// sample is posted as the form's text (the server reads CSV or JSON either way). Without
// script, pasting works the same.
const file = document.getElementById('sample-file');
const text = document.getElementById('sample');
file?.addEventListener('change', async () => {
  const chosen = file.files?.[0];
  if (chosen) text.value = await chosen.text();
});
