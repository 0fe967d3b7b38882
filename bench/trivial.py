"""The smallest FastAPI app, served the way every service is (uvicorn, no access log): what
one Python HTTP process answers on this machine when it does no work.

``python -m bench.trivial PORT``
"""

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="bench trivial endpoint")


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


def main() -> None:
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)


if __name__ == "__main__":
    main()
