from common.http import serve
from user_svc.app import create_app
from user_svc.settings import Settings

serve(create_app, Settings)
