# Setup (the same in every lesson): install course_lib if it is missing (as on Colab), then
# seed everything and choose the device and the profile (quick by default; COURSE_PROFILE=full).
import os, subprocess, sys
REPO_URL = "https://github.com/detection-course/object-detection-course"
try:
    import course_lib
except ImportError:
    url = os.environ.get("COURSE_REPO_URL", REPO_URL)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{url}@main"], check=True)
from course_lib.notebook import setup
ctx = setup(seed=0)
print(ctx)
