"""Which lines a GitHub diff (three lines of context) added, as check-pr judges them."""

from __future__ import annotations

from maestro.github import diff

PATCH = """\
diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,4 +1,5 @@
 import os
-x = 1
+x = 2
+y = 3
{blank}
 def f():
@@ -10,3 +11,4 @@ def f():
     pass
 # end
+z = 4
{blank}
diff --git a/new.sh b/new.sh
new file mode 100644
--- /dev/null
+++ b/new.sh
@@ -0,0 +1,2 @@
+#!/bin/sh
+++counter
\\ No newline at end of file
diff --git a/gone.py b/gone.py
deleted file mode 100644
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-bye
""".replace("{blank}", " ")


def test_added_lines_count_context_and_skip_removed_lines() -> None:
    assert diff.added_lines(PATCH) == {"app.py": {2, 3, 13}, "new.sh": {1, 2}}


def test_changed_files_pair_added_lines_with_the_files_at_the_head() -> None:
    files = {"app.py": "import os\nx = 2\ny = 3\n", "new.sh": "#!/bin/sh\n++counter", "other.py": ""}
    changed = diff.changed_files(PATCH, files)
    assert [(c.path, sorted(c.added)) for c in changed] == [("app.py", [2, 3, 13]), ("new.sh", [1, 2])]
    assert changed[0].content == files["app.py"]
