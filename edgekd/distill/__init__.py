"""The torch side of edgekd: the student and its teacher, the losses, the training loop, the stages of
`edgekd distill` and the export driver. Everything outside this folder (and `exporters/`) imports without
torch; the CLI, the apps and the bench reach in here only inside the code that trains or exports
(tests/runtime/test_layering.py holds the line)."""
