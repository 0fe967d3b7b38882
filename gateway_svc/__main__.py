from common.http import serve
from gateway_svc.app import create_app
from gateway_svc.settings import Settings

serve(create_app, Settings)
