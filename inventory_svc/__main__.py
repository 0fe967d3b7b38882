from common.http import serve
from inventory_svc.app import create_app
from inventory_svc.settings import Settings

serve(create_app, Settings)
