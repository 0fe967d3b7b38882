from common.http import serve
from order_svc.app import create_app
from order_svc.settings import Settings

serve(create_app, Settings)
